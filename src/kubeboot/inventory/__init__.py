"""The inventory contract: reading an inventory as Ansible does, validating it and planning from it."""
