controller_DEPS := k8s policy mask metrics common
