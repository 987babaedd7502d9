//go:build tools

// Package tools pins the module graph used to build pulumi-resource-kubernetes.
// The main package itself is copied from the module cache at build time.
package tools

import (
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)
