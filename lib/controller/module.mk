controller_DEPS := k8s policy mask metrics common
controller_PKGS := json-c openssl libcurl
