policy_DEPS := common
