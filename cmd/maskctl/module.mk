maskctl_MODULES := mask policy common admission
maskctl_PKGS := json-c
