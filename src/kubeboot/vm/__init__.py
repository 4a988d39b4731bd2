"""The slow, real-kernel test tier: Vagrant (libvirt provider) VMs, their offline box and host services."""
