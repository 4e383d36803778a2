maskmesh-stream_MODULES := kafka httpd
