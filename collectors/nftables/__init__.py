"""Native nftables tables read over nf_tables netlink and printed as `nft -j list table` does."""
