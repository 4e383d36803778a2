controller_DEPS := k8s policy metrics common
