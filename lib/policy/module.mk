policy_DEPS := common
policy_PKGS := json-c openssl libpcre2-8 yaml-0.1
