"""vmsched-pbs: vmsched as the scheduler of a Torque or OpenPBS server.

Floor 8 of the house (README, "Layout"): a user of ``vmsched.cycle``, never a place for
scheduling decisions. One module, one job:

- :mod:`~vmsched_pbs.errors`: PBS error numbers of both servers as one set of names;
- :mod:`~vmsched_pbs.ifl`: the small IFL interface the adapter uses, and its errors;
- :mod:`~vmsched_pbs.backend_pbs_python`, :mod:`~vmsched_pbs.backend_cffi`: the two ways
  to reach the server's client library;
- :mod:`~vmsched_pbs.config`: the ``[pbs]`` table of the site's policy file;
- :mod:`~vmsched_pbs.view`: the server's nodes and jobs as vmsched's model;
- :mod:`~vmsched_pbs.driver`: the VM driver interface and the external driver;
- :mod:`~vmsched_pbs.apply`: carrying out a plan, action by action;
- :mod:`~vmsched_pbs.adapter`: one cycle, read to publish;
- :mod:`~vmsched_pbs.cli`: the ``vmsched-pbs`` command.
"""
