"""Analytics: one metric layer (``metrics``), report windows (``window``), report builders (``reports``)
and their renderers (``render``)."""
