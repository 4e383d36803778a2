maskmesh-proxy_MODULES := proxy
