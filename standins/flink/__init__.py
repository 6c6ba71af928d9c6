"""A local Apache Flink standalone session cluster, run from PyPI's apache-flink-libraries jars.

The command line is ``python -m standins.flink`` (:mod:`standins.flink.__main__`). Modules:

- :mod:`standins.flink.cluster`: :class:`FlinkCluster`, which starts, reuses and stops the
  JobManager and TaskManagers, kills and adds TaskManagers, and reads the REST API;
- :mod:`standins.flink.config`: the cluster's ``config.yaml``;
- :mod:`standins.flink.dist`: the paths under ``<repo>/.local``, the jars (pinned in
  ``requirements.txt`` here, fetched once) and the java command;
- :mod:`standins.flink.errors`: :class:`FlinkError`.
"""
