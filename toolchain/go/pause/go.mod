module homelab-stack/toolchain/pause

go 1.26.0
