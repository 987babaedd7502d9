// Command pulumi-language-nodejs is a compact Node.js language host for the
// Pulumi engine, built against github.com/pulumi/pulumi/sdk/v3.
//
// The Go module of the upstream language host is not served by the module
// proxy this toolchain is restricted to, so this host implements the parts of
// the LanguageRuntime protocol that running, previewing and policy-checking a
// Node.js/TypeScript program need:
//
//   - Handshake, GetPluginInfo, Cancel
//   - GetRequiredPackages (scan node_modules for package.json files with a
//     "pulumi.resource" section); GetRequiredPlugins answers Unimplemented
//   - Run (node @pulumi/pulumi/cmd/run, monitor address passed straight through)
//   - RunPlugin (policy packs through @pulumi/pulumi/cmd/run-policy-pack behind
//     sdk.PolicyProxy, other plugins through @pulumi/pulumi/cmd/run-plugin)
//   - InstallDependencies, GetProgramDependencies, About, RuntimeOptionsPrompts
//
// Before starting node, Run and RunPlugin compare the node on PATH with the
// "engines.node" minimum of the @pulumi/pulumi package the program resolves.
//
// Code generation RPCs (GenerateProject/Program/Package, Pack, Link,
// Template) and attaching a debugger are unimplemented.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	sdk "github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	"github.com/pulumi/pulumi/sdk/v3/nodejs/npm"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Exit code with which @pulumi/pulumi/cmd/run signals that it already printed
// an actionable error.
const exitCodeUserActionable = 32

func main() {
	tracing := flag.String("tracing", "", "Emit tracing to a Zipkin-compatible endpoint")
	_ = flag.String("runtime", "nodejs", "Runtime (only nodejs is supported)")
	showVersion := flag.Bool("version", false, "Print the plugin version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	logging.InitLogging(false, 0, false)

	engineAddress := ""
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	cancelServe := make(chan bool)
	go func() {
		<-ctx.Done()
		stop()
		close(cancelServe)
	}()
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, stop); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start health check: %w", err))
		}
	}

	cancelCtx, cancelFn := context.WithCancel(context.Background())
	host := &languageHost{engineAddress: engineAddress, tracing: *tracing, cancelCtx: cancelCtx, cancelFn: cancelFn}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancelServe,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
	tracing       string
	cancelCtx     context.Context
	cancelFn      context.CancelFunc
}

func (h *languageHost) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

func (h *languageHost) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	h.engineAddress = req.GetEngineAddress()
	h.mu.Unlock()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *languageHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancelFn()
	return &emptypb.Empty{}, nil
}

// ---- options ---------------------------------------------------------------

type runtimeOptions struct {
	typescript     bool
	tsconfig       string
	nodeargs       []string
	packageManager npm.PackageManagerType
}

func parseRuntimeOptions(info *pulumirpc.ProgramInfo) (runtimeOptions, error) {
	opts := runtimeOptions{typescript: true, packageManager: npm.AutoPackageManager}
	if info == nil || info.GetOptions() == nil {
		return opts, nil
	}
	m := info.GetOptions().AsMap()
	if v, ok := m["typescript"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return opts, errors.New("typescript option must be a boolean")
		}
		opts.typescript = b
	}
	if v, ok := m["tsconfig"]; ok {
		s, isString := v.(string)
		if !isString {
			return opts, errors.New("tsconfig option must be a string")
		}
		opts.tsconfig = s
	}
	if v, ok := m["nodeargs"]; ok {
		s, isString := v.(string)
		if !isString {
			return opts, errors.New("nodeargs option must be a string")
		}
		opts.nodeargs = strings.Fields(s)
	}
	if v, ok := m["packagemanager"]; ok {
		s, isString := v.(string)
		if !isString {
			return opts, errors.New("packagemanager option must be a string")
		}
		switch s {
		case "auto", "npm", "yarn", "pnpm", "bun":
			opts.packageManager = npm.PackageManagerType(s)
		default:
			return opts, fmt.Errorf("unsupported packagemanager %q", s)
		}
	}
	return opts, nil
}

func (o runtimeOptions) env() []string {
	var env []string
	if o.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if o.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+o.tsconfig)
	}
	return env
}

// runner is a module of @pulumi/pulumi resolved by node from a program directory.
type runner struct {
	// path is the resolved file (e.g. …/@pulumi/pulumi/cmd/run/index.js).
	path string
	// nodeVersion is process.versions.node of the node that resolved it.
	nodeVersion string
}

// resolveRunner asks node to resolve a module from dir and to report its own version.
func resolveRunner(nodeBin, dir, module string) (runner, error) {
	script := fmt.Sprintf("try { console.log(JSON.stringify({path: require.resolve(%q), node: process.versions.node})); } "+
		"catch (e) { console.error(e.code === 'MODULE_NOT_FOUND' ? "+
		"'It looks like the Pulumi SDK has not been installed. Have you run npm install?' : e.message); "+
		"process.exit(1); }", module)
	cmd := exec.Command(nodeBin, "-e", script)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return runner{}, errors.New(strings.TrimSpace(string(ee.Stderr)))
		}
		return runner{}, err
	}
	var res struct {
		Path string `json:"path"`
		Node string `json:"node"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return runner{}, fmt.Errorf("resolving %s with %s: unexpected output %q", module, nodeBin, out)
	}
	return runner{path: res.Path, nodeVersion: res.Node}, nil
}

// parseVersion reads "X[.Y[.Z]]" (a leading "v" and a pre-release suffix are ignored).
func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

func versionLess(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// checkNode fails when the node that resolved r is older than the ">=X[.Y[.Z]]"
// "engines.node" of the @pulumi/pulumi package r belongs to. Other range forms,
// and runners outside @pulumi/pulumi, are not checked.
func checkNode(nodeBin string, r runner) error {
	for dir := filepath.Dir(r.path); dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		b, err := os.ReadFile(filepath.Join(dir, "package.json"))
		if err != nil {
			continue
		}
		var pkg struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Engines struct {
				Node string `json:"node"`
			} `json:"engines"`
		}
		if json.Unmarshal(b, &pkg) != nil || pkg.Name != "@pulumi/pulumi" {
			return nil
		}
		want := strings.TrimSpace(pkg.Engines.Node)
		if !strings.HasPrefix(want, ">=") || strings.ContainsAny(want, " |<") {
			return nil
		}
		minimum, ok := parseVersion(strings.TrimPrefix(want, ">="))
		have, haveOK := parseVersion(r.nodeVersion)
		if ok && haveOK && versionLess(have, minimum) {
			return fmt.Errorf("@pulumi/pulumi %s requires Node.js %s, but %s is v%s: "+
				"put a newer node first on PATH", pkg.Version, want, nodeBin, r.nodeVersion)
		}
		return nil
	}
	return nil
}

// prepareNode finds node on PATH, resolves module from dir and checks the node version.
func prepareNode(dir, module string) (string, runner, error) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return "", runner{}, fmt.Errorf("could not find node on the $PATH: %w", err)
	}
	r, err := resolveRunner(nodeBin, dir, module)
	if err != nil {
		return "", runner{}, err
	}
	if err := checkNode(nodeBin, r); err != nil {
		return "", runner{}, err
	}
	return nodeBin, r, nil
}

// ---- required packages -----------------------------------------------------

type packageJSON struct {
	Name    string                  `json:"name"`
	Version string                  `json:"version"`
	Pulumi  plugin.PulumiPluginJSON `json:"pulumi"`
}

func packageDependency(info packageJSON) (*pulumirpc.PackageDependency, error) {
	if !info.Pulumi.Resource {
		return nil, nil
	}
	name := info.Pulumi.Name
	if name == "" {
		if !strings.HasPrefix(info.Name, "@pulumi/") {
			return nil, fmt.Errorf("package %q has no pulumi.name", info.Name)
		}
		name = strings.TrimPrefix(info.Name, "@pulumi/")
	}
	ver := info.Pulumi.Version
	if ver == "" {
		ver = info.Version
	}
	if ver == "" {
		return nil, fmt.Errorf("package %q has no version", info.Name)
	}
	if !strings.HasPrefix(ver, "v") {
		ver = "v" + ver
	}
	dep := &pulumirpc.PackageDependency{Name: name, Kind: "resource", Version: ver, Server: info.Pulumi.Server}
	if p := info.Pulumi.Parameterization; p != nil {
		dep.Parameterization = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
	}
	return dep, nil
}

// scanPackages walks dir (following symlinks once) and collects the plugin
// requirements of every package.json below a node_modules directory.
func scanPackages(dir string, inNodeModules bool, seen map[string]bool) ([]*pulumirpc.PackageDependency, []error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, []error{err}
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if seen[abs] {
		return nil, nil
	}
	seen[abs] = true
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, []error{err}
	}
	var deps []*pulumirpc.PackageDependency
	var errs []error
	for _, e := range entries {
		p := filepath.Join(abs, e.Name())
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			isDir = fi.IsDir()
		}
		switch {
		case isDir:
			if !inNodeModules && e.Name() != "node_modules" {
				// Outside node_modules only descend into node_modules itself, not into
				// the program's own source tree (which may contain nested projects).
				continue
			}
			more, moreErrs := scanPackages(p, inNodeModules || filepath.Base(abs) == "node_modules" ||
				e.Name() == "node_modules", seen)
			deps = append(deps, more...)
			errs = append(errs, moreErrs...)
		case inNodeModules && e.Name() == "package.json":
			b, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var info packageJSON
			if err := json.Unmarshal(b, &info); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
				continue
			}
			dep, err := packageDependency(info)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
			} else if dep != nil {
				deps = append(deps, dep)
			}
		}
	}
	return deps, errs
}

func uniqueDeps(deps []*pulumirpc.PackageDependency) []*pulumirpc.PackageDependency {
	seen := map[string]bool{}
	var out []*pulumirpc.PackageDependency
	for _, d := range deps {
		key := d.Name + "@" + d.Version
		if d.Parameterization != nil {
			key += "/" + d.Parameterization.Name + "@" + d.Parameterization.Version
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, d)
		}
	}
	return out
}

func (h *languageHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, errs := scanPackages(req.GetInfo().GetProgramDirectory(), false, map[string]bool{})
	for _, err := range errs {
		logging.V(3).Infof("plugin discovery: %v", err)
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: uniqueDeps(deps)}, nil
}

func (h *languageHost) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "GetRequiredPlugins is superseded by GetRequiredPackages")
}

// ---- Run -------------------------------------------------------------------

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return &pulumirpc.RunResponse{Error: "missing program info"}, nil
	}
	if req.GetAttachDebugger() {
		return &pulumirpc.RunResponse{Error: "this Node.js language host cannot attach a debugger"}, nil
	}
	opts, err := parseRuntimeOptions(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	runModule := os.Getenv("PULUMI_LANGUAGE_NODEJS_RUN_PATH")
	if runModule == "" {
		runModule = "@pulumi/pulumi/cmd/run"
	}
	nodeBin, run, err := prepareNode(info.GetProgramDirectory(), runModule)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	// node [nodeargs…] …/cmd/run/index.js --monitor … [entry point] [args…]
	args := append([]string{}, opts.nodeargs...)
	args = append(args, run.path)
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.engine())
	flagArg("organization", req.GetOrganization())
	flagArg("project", req.GetProject())
	flagArg("root-directory", info.GetRootDirectory())
	flagArg("stack", req.GetStack())
	flagArg("pwd", info.GetProgramDirectory())
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	flagArg("tracing", h.tracing)
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	cfg := map[string]string{}
	for k, v := range req.GetConfig() {
		key, err := config.ParseKey(k)
		if err != nil {
			return &pulumirpc.RunResponse{Error: err.Error()}, nil
		}
		// The Node.js runtime accepts the legacy "<pkg>:config:<name>" form.
		cfg[key.Namespace()+":config:"+key.Name()] = v
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	env := append(os.Environ(), "PULUMI_CONFIG="+string(cfgJSON), "PULUMI_CONFIG_SECRET_KEYS="+string(secretJSON))
	env = append(env, opts.env()...)

	cmdCtx, cmdCancel := context.WithCancel(h.cancelCtx)
	defer cmdCancel()
	stopOnRequestEnd := context.AfterFunc(ctx, cmdCancel)
	defer stopOnRequestEnd()

	cmd := exec.CommandContext(cmdCtx, nodeBin, args...)
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = env
	// Wrap the writers so node cannot switch our own stdio to non-blocking mode.
	cmd.Stdout = struct{ io.Writer }{os.Stdout}
	cmd.Stderr = struct{ io.Writer }{os.Stderr}
	logging.V(5).Infof("language host running: %s %s", nodeBin, strings.Join(args, " "))

	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.ExitCode() == exitCodeUserActionable {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", ee.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: "could not run node: " + err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// ---- RunPlugin (policy packs and Node.js plugins) ---------------------------

func (h *languageHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	ctx := server.Context()
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()

	info := req.GetInfo()
	if info == nil {
		return errors.New("missing program info")
	}
	if req.GetAttachDebugger() {
		return errors.New("this Node.js language host cannot attach a debugger")
	}
	opts, err := parseRuntimeOptions(info)
	if err != nil {
		return err
	}
	isPolicy := req.GetKind() == string(apitype.AnalyzerPlugin)
	module := "@pulumi/pulumi/cmd/run-plugin"
	if isPolicy {
		module = "@pulumi/pulumi/cmd/run-policy-pack"
	} else if p := os.Getenv("PULUMI_LANGUAGE_NODEJS_RUN_PATH"); p != "" {
		module = p
	}
	nodeBin, run, err := prepareNode(info.GetProgramDirectory(), module)
	if err != nil {
		return err
	}

	// Node options go before the script: node [nodeargs…] <runner> …
	env := append(append([]string{}, req.GetEnv()...), opts.env()...)
	args := append(append([]string{}, opts.nodeargs...), run.path)
	if isPolicy {
		// run-policy-pack <engine address> <policy pack directory>
		args = append(args, req.GetArgs()...)
		args = append(args, info.GetProgramDirectory())
	} else {
		// run-plugin <plugin directory> <engine address> …
		args = append(args, info.GetProgramDirectory())
		args = append(args, req.GetArgs()...)
	}

	var proxy *sdk.PolicyProxy
	if isPolicy {
		proxy, stdout, err = sdk.NewPolicyProxy(ctx, stdout)
		if err != nil {
			return fmt.Errorf("could not start policy pack proxy: %w", err)
		}
		stackCfg, err := proxy.AwaitConfiguration(ctx)
		if err != nil {
			proxy.Abort(err)
			return fmt.Errorf("could not get stack configuration: %w", err)
		}
		stackEnv, err := policyStackEnv(stackCfg)
		if err != nil {
			// Unblocks engine calls waiting on the proxy for the policy pack.
			proxy.Abort(err)
			return err
		}
		env = append(env, stackEnv...)
	}

	cmd := exec.CommandContext(ctx, nodeBin, args...)
	if isPolicy {
		cmd.Dir = info.GetProgramDirectory()
	} else {
		cmd.Dir = req.GetPwd()
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		err = fmt.Errorf("could not run node: %w", err)
		if proxy != nil {
			proxy.Abort(err)
		}
		return err
	}
	if proxy != nil {
		return proxy.Attach(ctx, cmd)
	}
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("Program exited with non-zero exit code: %d", ee.ExitCode())
		}
		return err
	}
	return nil
}

// policyStackEnv is the environment through which @pulumi/pulumi, loaded by a
// policy pack, learns the stack it analyzes (what cmd/run sets for programs).
func policyStackEnv(cfg *pulumirpc.AnalyzerStackConfigureRequest) ([]string, error) {
	if cfg == nil {
		return nil, nil
	}
	var env []string
	add := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	add("PULUMI_NODEJS_ORGANIZATION", cfg.GetOrganization())
	add("PULUMI_NODEJS_PROJECT", cfg.GetProject())
	add("PULUMI_NODEJS_STACK", cfg.GetStack())
	add("PULUMI_NODEJS_DRY_RUN", strconv.FormatBool(cfg.GetDryRun()))
	if cfg.GetConfig() != nil {
		b, err := json.Marshal(cfg.GetConfig())
		if err != nil {
			return nil, err
		}
		add("PULUMI_CONFIG", string(b))
	}
	if keys := cfg.GetConfigSecretKeys(); len(keys) > 0 {
		b, err := json.Marshal(keys)
		if err != nil {
			return nil, err
		}
		add("PULUMI_CONFIG_SECRET_KEYS", string(b))
	}
	return env, nil
}

// ---- dependencies / about --------------------------------------------------

func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	opts, err := parseRuntimeOptions(req.GetInfo())
	if err != nil {
		return err
	}
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		dir = req.GetDirectory()
	}
	fmt.Fprintln(stdout, "Installing dependencies...")
	if _, err := npm.Install(server.Context(), opts.packageManager, dir, false, stdout, stderr); err != nil {
		return fmt.Errorf("installing dependencies in %s: %w", dir, err)
	}
	fmt.Fprintln(stdout, "Finished installing dependencies")
	return nil
}

func (h *languageHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	opts, err := parseRuntimeOptions(req.GetInfo())
	if err != nil {
		return nil, err
	}
	dir := req.GetInfo().GetProgramDirectory()
	pm, err := npm.ResolvePackageManager(opts.packageManager, dir)
	if err != nil {
		return nil, err
	}
	pkgs, err := pm.ListPackages(ctx, dir, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	deps := make([]*pulumirpc.DependencyInfo, 0, len(pkgs))
	for _, p := range pkgs {
		deps = append(deps, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("could not find node on the $PATH: %w", err)
	}
	out, err := exec.CommandContext(ctx, nodeBin, "--version").Output()
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: nodeBin,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "v"),
	}, nil
}

func (h *languageHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}
