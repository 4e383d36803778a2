kafka_DEPS := mask policy metrics common
