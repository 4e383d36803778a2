k8s_DEPS := common
