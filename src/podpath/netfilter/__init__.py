"""Pure parsers and models of netfilter rulesets (iptables-save text, nft JSON)."""
