"""`mipdump`: decode Mobile IP messages from hex, raw files or pcap/pcapng captures into JSON lines."""
