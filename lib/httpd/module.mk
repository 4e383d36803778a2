httpd_DEPS := metrics common
