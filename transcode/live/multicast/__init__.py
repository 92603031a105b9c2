"""A live channel's RTP/UDP multicast output: its published rung as one constant-rate
MPEG-TS SPTS, continuous across source switches and the slate, in a process of its own.

``ts`` restamps segments onto one timeline, ``pacer`` fills constant-rate slots,
``sender`` sends them on time, ``follow`` reads the live window, ``run`` is the process
and ``process`` is the node's side (start, restart, stop).
"""
