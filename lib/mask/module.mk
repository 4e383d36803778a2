mask_DEPS := policy common
mask_PKGS := json-c openssl libpcre2-8 zlib
