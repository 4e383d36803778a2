maskctl_MODULES := mask policy common admission
