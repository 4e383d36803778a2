k8s_DEPS := common
k8s_PKGS := libcurl json-c openssl yaml-0.1 zlib
