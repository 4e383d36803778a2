mm-testapp_MODULES := common
