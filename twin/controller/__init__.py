"""The controller interface: what a policy reads from and writes to a robot controller.

The contract between the deployment adapter (:mod:`celltwin.policies.deploy`) and every
controller it drives: the in-process twin and the served twin (:mod:`celltwin.serve`), and any
OPC UA server with the OPC 40010 robotics model and celltwin's command interface
(:mod:`celltwin.controller.opcua_model`). numpy only, so it runs on a controller PC.
"""
