// Command crd-apiserver is brfed's local Kubernetes data plane: upstream
// k8s.io/apiextensions-apiserver (the CRD-serving half of kube-apiserver), run on its own
// against an etcd on loopback. It serves the real Kubernetes REST API for
// CustomResourceDefinitions and their custom resources, which is all a brfed data plane needs.
//
// Upstream's standalone command assumes a kube-apiserver around it. This main adds what that
// kube-apiserver would otherwise provide:
//
//  1. Discovery. The legacy `/apis` group list (and the aggregated one) is normally served by
//     kube-aggregator; upstream's Complete() turns discovery off. We turn it back on and keep
//     the legacy group list in step with the established CRDs (see groupLister below).
//  2. OpenAPI v2. Without an OpenAPI (v2) config the generic server's static spec stays nil and
//     the CRD OpenAPI controllers (v2 and v3) never start; we configure it as kube-apiserver does.
//  3. A core group stub. There is no core API (/api/v1: namespaces, secrets, ...), but full
//     discovery in kube clients (kube-rs Discovery::run, client-go's ServerGroupsAndResources)
//     fails without /api; it is served with version v1 and no resources (see coreStub below).
//  4. Readiness. The options register a core/v1 Services informer (used to resolve conversion
//     webhook services) that can never sync here; the generic server's informer factory is
//     replaced by an empty one so /readyz does not wait for it forever.
//  5. Standalone defaults: client-certificate auth only, no admission plugins, no priority and
//     fairness, and a prompt shutdown (see standaloneDefaults).
//
// Built offline from Debian sid's Go source packages by ../setup-apiserver.sh.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/version"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/cli"
	"k8s.io/klog/v2"
)

func main() {
	opts := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	standaloneDefaults(opts)
	cmd := &cobra.Command{
		Use:          "crd-apiserver",
		Short:        "brfed local data plane: standalone apiextensions-apiserver with /apis discovery",
		SilenceUsage: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			// resolves --emulated-version / --feature-gates like upstream's command
			return opts.ServerRunOptions.ComponentGlobalsRegistry.Set()
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if err := opts.Complete(); err != nil {
				return err
			}
			if err := opts.Validate(); err != nil {
				return err
			}
			return serve(c.Context(), opts)
		},
	}
	cmd.SetContext(genericapiserver.SetupSignalContext())
	opts.AddFlags(cmd.Flags())
	os.Exit(cli.Run(cmd))
}

// standaloneDefaults changes option defaults (before the flags are parsed, so flags still win)
// from "runs next to a kube-apiserver" to "runs alone": there is no core API to delegate
// authentication (TokenReview) or authorization (SubjectAccessReview) to, to read
// priority-and-fairness objects from, or to feed the admission plugins' informers
// (NamespaceLifecycle would never become ready; webhooks and admission policies need the core
// API too). Client certificates (--client-ca-file) authenticate; the group system:masters is
// always authorized; everything else is forbidden. --kubeconfig (the core API) is still
// required by upstream's config code; its target is never contacted.
//
// Shutdown: upstream waits up to the request timeout (60 s) for open watches before the HTTP
// server stops, so a SIGTERM with a client watching took a minute. Here open watches are ended
// within a second (clients see the stream end, as at a kube-apiserver restart) and the HTTP
// server gets 2 s to close; tests stop and restart data planes and need that to be prompt.
func standaloneDefaults(o *options.CustomResourceDefinitionsServerOptions) {
	ro := o.RecommendedOptions
	ro.Authentication.RemoteKubeConfigFileOptional = true
	ro.Authentication.SkipInClusterLookup = true
	ro.Authorization.RemoteKubeConfigFileOptional = true
	ro.Features.EnablePriorityAndFairness = false
	ro.Admission = nil
	o.ServerRunOptions.ShutdownWatchTerminationGracePeriod = time.Second
	o.ServerRunOptions.ShutdownSendRetryAfter = true
}

func serve(ctx context.Context, opts *options.CustomResourceDefinitionsServerOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return fmt.Errorf("building server config: %w", err)
	}
	generic := cfg.GenericConfig

	// (2) OpenAPI v2, with the same definitions and namer upstream uses for its v3 config.
	generic.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(
		openapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions),
		openapinamer.NewDefinitionNamer(apiserver.Scheme, clientgoscheme.Scheme))
	generic.OpenAPIConfig.Info.Title = "Kubernetes"
	generic.OpenAPIConfig.Info.Version = generic.EffectiveVersion.BinaryVersion().String()

	// (4) An informer factory with nothing registered: nothing for /readyz to wait on.
	core, err := kubernetes.NewForConfig(generic.LoopbackClientConfig)
	if err != nil {
		return fmt.Errorf("loopback client: %w", err)
	}
	generic.SharedInformerFactory = informers.NewSharedInformerFactory(core, 0)

	completed := cfg.Complete()
	// (1) upstream's Complete() sets this to false; the handler chain reads it in New().
	completed.GenericConfig.EnableDiscovery = true

	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return fmt.Errorf("creating server: %w", err)
	}
	gs := server.GenericAPIServer

	crds := server.Informers.Apiextensions().V1().CustomResourceDefinitions()
	gl := &groupLister{lister: crds.Lister(), mgr: gs.DiscoveryGroupManager, ours: map[string]bool{}}
	if _, err := crds.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { gl.sync() },
		UpdateFunc: func(any, any) { gl.sync() },
		DeleteFunc: func(any) { gl.sync() },
	}); err != nil {
		return fmt.Errorf("watching CRDs for discovery: %w", err)
	}
	// (3) the core group's discovery documents
	for _, path := range []string{"/api", "/api/", "/api/v1", "/api/v1/"} {
		gs.Handler.NonGoRestfulMux.Handle(path, coreStub{})
	}
	return gs.PrepareRun().RunWithContext(ctx)
}

// coreStub answers the core group's discovery documents: /api (APIVersions, or an empty
// aggregated APIGroupDiscoveryList when asked for one) and /api/v1 (an APIResourceList with no
// resources). Every other /api/... path stays 404.
type coreStub struct{}

func (coreStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var body any
	contentType := "application/json"
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/api":
		if strings.Contains(r.Header.Get("Accept"), "as=APIGroupDiscoveryList") {
			contentType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
			body = map[string]any{"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
				"metadata": map[string]any{}, "items": []any{}}
		} else {
			body = metav1.APIVersions{
				TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
				Versions: []string{"v1"},
				ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
					{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}},
			}
		}
	default: // /api/v1
		body = metav1.APIResourceList{
			TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
			GroupVersion: "v1",
			APIResources: []metav1.APIResource{},
		}
	}
	w.Header().Set("Content-Type", contentType)
	if err := json.NewEncoder(w).Encode(body); err != nil {
		klog.ErrorS(err, "writing core discovery stub")
	}
}

// discoveryGroups is the part of the generic server's legacy /apis handler we use.
type discoveryGroups interface {
	AddGroup(metav1.APIGroup)
	RemoveGroup(string)
}

// groupLister keeps the legacy /apis group list equal to the groups of the established,
// not-deleted CRDs (plus the groups the server itself installed, which it never touches).
// The per-group and per-version documents (/apis/<group>[/<version>]) are already served by
// apiextensions' own discovery controller.
type groupLister struct {
	mu     sync.Mutex
	lister interface {
		List(labels.Selector) ([]*apiextensionsv1.CustomResourceDefinition, error)
	}
	mgr  discoveryGroups
	ours map[string]bool // groups this lister has added
}

func (g *groupLister) sync() {
	g.mu.Lock()
	defer g.mu.Unlock()
	all, err := g.lister.List(labels.Everything())
	if err != nil {
		klog.ErrorS(err, "listing CRDs for /apis discovery")
		return
	}
	want := map[string]map[string]bool{} // group -> served versions
	for _, crd := range all {
		if crd.DeletionTimestamp != nil || !established(crd) {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			if want[crd.Spec.Group] == nil {
				want[crd.Spec.Group] = map[string]bool{}
			}
			want[crd.Spec.Group][v.Name] = true
		}
	}
	for group := range g.ours {
		if want[group] == nil {
			g.mgr.RemoveGroup(group)
			delete(g.ours, group)
		}
	}
	for group, versions := range want {
		names := make([]string, 0, len(versions))
		for v := range versions {
			names = append(names, v)
		}
		// kube-aware order (v1 > v1beta2 > v1beta1 > v1alpha1 > others); the first is preferred
		sort.Slice(names, func(i, j int) bool {
			return version.CompareKubeAwareVersionStrings(names[i], names[j]) > 0
		})
		apiGroup := metav1.APIGroup{Name: group}
		for _, v := range names {
			apiGroup.Versions = append(apiGroup.Versions,
				metav1.GroupVersionForDiscovery{GroupVersion: group + "/" + v, Version: v})
		}
		apiGroup.PreferredVersion = apiGroup.Versions[0]
		g.mgr.AddGroup(apiGroup) // replaces an existing entry of the same name
		g.ours[group] = true
	}
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}
