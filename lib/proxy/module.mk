proxy_DEPS := mask policy metrics common
