httpd_DEPS := metrics common
httpd_PKGS := libmicrohttpd gnutls
