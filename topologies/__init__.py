"""Mininet topologies of the testbed (design §6), as pure data plus the code that brings them up.

* :mod:`topologies.dualstack`: :class:`~topologies.dualstack.DualStackTopo`, the default topology.
* :mod:`topologies.addressing`: its address plan; :mod:`topologies.agent_configs`: its agent configs.
* :mod:`topologies.spec`: per-node data (addresses, routes, sysctls, agent) and mobile-node links.
* :mod:`topologies.nodes`: hosts that start agents/helpers and stop exactly those processes.
* :mod:`topologies.build`: ``build_network`` (LinuxBridge, no controller) and ``configure``.

Nothing is imported here: ``import topologies`` needs neither Mininet nor root.
"""
