proxy_DEPS := mask policy metrics common
proxy_PKGS := zlib libnghttp2
