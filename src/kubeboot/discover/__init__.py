"""`kubeboot discover`: gather the facts an inventory needs from hosts over SSH and write them to host_vars.

Layers, from the edge inwards: ``ssh`` (connections, host-key policy, parallel runs; reused by other commands),
``gather`` (the one remote script and the parsing of its output), ``facts`` (typed facts and the public NIC choice),
``hostvars`` (planning and writing host_vars without clobbering hand-written values), ``run`` (the command's flow).
"""
