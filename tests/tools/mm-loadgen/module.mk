mm-loadgen_MODULES := common
mm-loadgen_PKGS := openssl
