maskmesh-controller_MODULES := controller httpd
