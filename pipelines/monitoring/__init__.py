"""Monitoring of the live model from the router's logs: interval metrics, alarms and the interval's report.

``monitor(config, start, end, now)`` measures one interval (``metrics``), ``alarms(config, report)`` judges
it against ``config.monitoring`` (``alarms``) and ``write_report(config, start, end, report, alarms)``
writes its JSON and HTML page (``report``). The monitoring DAG only wires these three.
"""
