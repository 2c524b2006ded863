"""Netlink: the one core every netlink reader uses, rtnetlink dumps and decoders, the netns scan."""
