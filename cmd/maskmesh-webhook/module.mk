maskmesh-webhook_MODULES := httpd admission k8s
