mm-loadgen_MODULES := common proxy
mm-loadgen_PKGS := openssl
