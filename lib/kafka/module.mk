kafka_DEPS := mask policy metrics common
kafka_PKGS := rdkafka
