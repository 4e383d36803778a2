# Certificates and kubeconfigs of the local cluster, made with openssl; sourced by
# hack/cluster-up.sh after hack/cluster/lib.sh. ECDSA P-256 keys: quick to make, and what
# every component accepts (the service-account key signs tokens as ES256).
# shellcheck shell=bash

# cert NAME CN O(or "") EKU(serverAuth|clientAuth|both) [SAN...]: pki/NAME.{key,crt} from the CA
cert() {
    local name=$1 cn=$2 org=$3 eku=$4 pki="$MM_CLUSTER_DIR/pki" subj ext
    shift 4
    subj="/CN=$cn"
    [ -n "$org" ] && subj="/O=$org$subj"
    case "$eku" in
        serverAuth) ext="extendedKeyUsage=serverAuth" ;;
        clientAuth) ext="extendedKeyUsage=clientAuth" ;;
        both) ext="extendedKeyUsage=serverAuth,clientAuth" ;;
        *) die "cert $name: bad usage $eku" ;;
    esac
    ext+=$'\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=critical,CA:FALSE'
    if [ $# -gt 0 ]; then
        local san="" s
        for s in "$@"; do
            if [[ "$s" =~ ^[0-9.]+$ ]]; then san+="IP:$s,"; else san+="DNS:$s,"; fi
        done
        ext+=$'\nsubjectAltName='"${san%,}"
    fi
    openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key" 2>/dev/null
    openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 30 -sha256 -extfile <(printf '%s\n' "$ext") -out "$pki/$name.crt" 2>/dev/null
    rm -f "$pki/$name.csr"
    chmod 600 "$pki/$name.key"
}

# kubeconfig NAME USER-CERT: $MM_CLUSTER_DIR/NAME.kubeconfig with the client certificate pki/CERT
kubeconfig() {
    local name=$1 crt=$2 pki="$MM_CLUSTER_DIR/pki"
    umask 077
    cat >"$MM_CLUSTER_DIR/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: maskmesh-local
  cluster:
    server: https://$MM_NODE_IP:$MM_API_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$pki/$crt.crt")
    client-key-data: $(base64 -w0 "$pki/$crt.key")
contexts:
- name: maskmesh-local
  context: {cluster: maskmesh-local, user: $name}
current-context: maskmesh-local
EOF
    umask 022
}

make_pki() {
    local pki="$MM_CLUSTER_DIR/pki"
    mkdir -p "$pki"
    openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=maskmesh-local-ca" -days 30 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$pki/ca.crt" 2>/dev/null
    # the serving certificates: every name and address clients use
    cert apiserver kube-apiserver "" serverAuth kubernetes kubernetes.default kubernetes.default.svc \
        kubernetes.default.svc.cluster.local localhost "$MM_NODE_IP" "$MM_API_SERVICE_IP" 127.0.0.1
    cert etcd-server etcd "" both localhost 127.0.0.1
    cert kubelet-server "$MM_NODE" "" serverAuth "$MM_NODE" "$MM_NODE_IP"
    # clients: the apiserver's own, the components (their RBAC users), the node, the admin
    cert apiserver-etcd-client kube-apiserver-etcd-client "" clientAuth
    cert apiserver-kubelet-client kube-apiserver-kubelet-client "system:masters" clientAuth
    cert controller-manager system:kube-controller-manager "" clientAuth
    cert scheduler system:kube-scheduler "" clientAuth
    cert kubelet "system:node:$MM_NODE" system:nodes clientAuth
    cert kube-proxy system:kube-proxy "" clientAuth
    cert kube-router kube-router "" clientAuth
    cert admin maskmesh-admin system:masters clientAuth
    # the service-account token signing pair (issuer: see cluster-up.sh)
    openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key" 2>/dev/null
    openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    chmod 600 "$pki"/*.key
    kubeconfig admin admin
    kubeconfig controller-manager controller-manager
    kubeconfig scheduler scheduler
    kubeconfig kubelet kubelet
    kubeconfig kube-proxy kube-proxy
    kubeconfig kube-router kube-router
}
