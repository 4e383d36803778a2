metrics_DEPS := common
