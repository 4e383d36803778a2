maskmesh-webhook_MODULES := httpd admission
