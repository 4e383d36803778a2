mm-testapp_MODULES := common
mm-testapp_PKGS := libmicrohttpd zlib
