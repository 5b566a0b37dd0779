"""Traffic for experiments: spoofed packets from scapy templates (``scapygen``)
and real clients (``tools``)."""
