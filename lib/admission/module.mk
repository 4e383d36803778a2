admission_DEPS := policy common
admission_PKGS := json-c openssl yaml-0.1
