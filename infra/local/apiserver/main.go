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
//  6. RBAC. kube-apiserver authorizes with the RBAC API (Roles, RoleBindings, ClusterRoles,
//     ClusterRoleBindings); this server has no such API, so the world serves those four kinds
//     as CRDs of the same group and version (infra/local/rbac-crds/) and rbacAuthorizer below
//     grants what they grant, matching rules with upstream's own rule comparison
//     (k8s.io/component-helpers/auth/rbac/validation). brfed's functions then run as a plain
//     user whose only rights are the ones brfed ships (infra/dataplane/brfed-rbac.yaml).
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

	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/union"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/cli"
	"k8s.io/component-helpers/auth/rbac/validation"
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
// always authorized; everything else only as the RBAC objects say (rbacAuthorizer). --kubeconfig (the core API) is still
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

	// (6) RBAC from the RBAC objects (served as CRDs), after the options' own authorizers
	// (system:masters, always-allowed paths)
	dyn, err := dynamic.NewForConfig(generic.LoopbackClientConfig)
	if err != nil {
		return fmt.Errorf("loopback dynamic client: %w", err)
	}
	rbacInformers := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	rbac := newRBACAuthorizer(rbacInformers)
	generic.Authorization.Authorizer = union.New(generic.Authorization.Authorizer, rbac)

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
	// the RBAC informers start with the server (their CRDs may come later: until then, and
	// until they have synced, nobody outside system:masters is granted anything). /readyz waits
	// for them once their CRDs exist, as kube-apiserver's waits for its RBAC: a restarted data
	// plane is not ready while it would still refuse what its RoleBindings grant.
	gs.AddPostStartHookOrDie("brfed-rbac-informers", func(hook genericapiserver.PostStartHookContext) error {
		rbacInformers.Start(hook.Done())
		return nil
	})
	if err := gs.AddReadyzChecks(healthz.NamedCheck("brfed-rbac", func(*http.Request) error {
		return rbac.ready(crds.Lister())
	})); err != nil {
		return fmt.Errorf("adding the RBAC readiness check: %w", err)
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

// rbacAuthorizer grants a request when a RoleBinding of its namespace or a ClusterRoleBinding
// names its user, one of its groups, or its ServiceAccount, and the bound Role or ClusterRole
// has a rule that covers it; otherwise it has no opinion (the request is then forbidden, as
// kube-apiserver's RBAC does: there are no deny rules). Rule matching (verbs, API groups,
// resources and subresources, resource names, wildcards) is upstream's `validation.Covers`, the
// comparison kube-apiserver uses to stop privilege escalation. Not modelled: aggregated
// ClusterRoles (aggregationRule) and non-resource URL rules (any authenticated user may GET
// non-resource paths such as /apis and /version, as kube-apiserver's default
// system:discovery and system:public-info-viewer bindings allow).
type rbacAuthorizer struct {
	roles, roleBindings, clusterRoles, clusterRoleBindings cache.GenericLister
	synced                                                 []cache.InformerSynced
}

// ready: every RBAC informer whose CRD is established has synced (before the CRDs are
// applied there is nothing to wait for).
func (r *rbacAuthorizer) ready(crds interface {
	Get(string) (*apiextensionsv1.CustomResourceDefinition, error)
}) error {
	for i, resource := range rbacResources {
		crd, err := crds.Get(resource + "." + rbacv1.GroupName)
		if err != nil || !established(crd) {
			continue
		}
		if !r.synced[i]() {
			return fmt.Errorf("the %s informer has not synced yet", resource)
		}
	}
	return nil
}

var rbacResources = []string{"roles", "rolebindings", "clusterroles", "clusterrolebindings"}

func newRBACAuthorizer(f dynamicinformer.DynamicSharedInformerFactory) *rbacAuthorizer {
	var informers []cache.GenericLister
	r := &rbacAuthorizer{}
	for _, resource := range rbacResources {
		i := f.ForResource(rbacv1.SchemeGroupVersion.WithResource(resource))
		informers = append(informers, i.Lister())
		r.synced = append(r.synced, i.Informer().HasSynced)
	}
	r.roles, r.roleBindings, r.clusterRoles, r.clusterRoleBindings =
		informers[0], informers[1], informers[2], informers[3]
	return r
}

func (r *rbacAuthorizer) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	u := a.GetUser()
	if u == nil {
		return authorizer.DecisionNoOpinion, "no user", nil
	}
	if !a.IsResourceRequest() {
		if a.GetVerb() == "get" && hasGroup(u, user.AllAuthenticated) {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionNoOpinion, "", nil
	}
	resource := a.GetResource()
	if a.GetSubresource() != "" {
		resource += "/" + a.GetSubresource()
	}
	want := rbacv1.PolicyRule{Verbs: []string{a.GetVerb()}, APIGroups: []string{a.GetAPIGroup()},
		Resources: []string{resource}}
	if a.GetName() != "" {
		want.ResourceNames = []string{a.GetName()}
	}
	if covered, _ := validation.Covers(r.rulesFor(u, a.GetNamespace()), []rbacv1.PolicyRule{want}); covered {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionNoOpinion, "no RBAC rule bound to this user allows it", nil
}

// rulesFor: the rules of every role bound to u cluster-wide, and in namespace ns (only the
// bindings of ns and the roles they name are read: a request is authorized on every call).
func (r *rbacAuthorizer) rulesFor(u user.Info, ns string) []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	for _, o := range list[rbacv1.ClusterRoleBinding](r.clusterRoleBindings.List(labels.Everything())) {
		if binds(o.Subjects, u, "") && o.RoleRef.Kind == "ClusterRole" {
			rules = append(rules, roleRules(r.clusterRoles.Get(o.RoleRef.Name))...)
		}
	}
	if ns == "" {
		return rules
	}
	for _, o := range list[rbacv1.RoleBinding](r.roleBindings.ByNamespace(ns).List(labels.Everything())) {
		if !binds(o.Subjects, u, ns) {
			continue
		}
		switch o.RoleRef.Kind {
		case "ClusterRole":
			rules = append(rules, roleRules(r.clusterRoles.Get(o.RoleRef.Name))...)
		case "Role":
			rules = append(rules, roleRules(r.roles.ByNamespace(ns).Get(o.RoleRef.Name))...)
		}
	}
	return rules
}

// roleRules: the rules of the Role or ClusterRole a lister's Get returned (none when it is
// missing: a binding to a missing role grants nothing, as in kube-apiserver).
func roleRules(o runtime.Object, err error) []rbacv1.PolicyRule {
	if err != nil {
		return nil
	}
	var rules []rbacv1.PolicyRule
	for _, role := range list[withRules]([]runtime.Object{o}, nil) {
		rules = append(rules, role.Rules...)
	}
	return rules
}

// withRules: what Role and ClusterRole share.
type withRules struct {
	Rules []rbacv1.PolicyRule `json:"rules"`
}

// binds: one of subjects is u (by user name, group, or ServiceAccount; a ServiceAccount
// subject without a namespace is in the binding's, bindingNS).
func binds(subjects []rbacv1.Subject, u user.Info, bindingNS string) bool {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if s.Name == u.GetName() {
				return true
			}
		case rbacv1.GroupKind:
			if hasGroup(u, s.Name) {
				return true
			}
		case rbacv1.ServiceAccountKind:
			ns := s.Namespace
			if ns == "" {
				ns = bindingNS
			}
			if u.GetName() == "system:serviceaccount:"+ns+":"+s.Name {
				return true
			}
		}
	}
	return false
}

func hasGroup(u user.Info, group string) bool {
	for _, g := range u.GetGroups() {
		if g == group {
			return true
		}
	}
	return false
}

// list: a lister's objects as typed RBAC objects (one that does not convert is skipped and
// logged: it grants nothing).
func list[T any](objs []runtime.Object, err error) []T {
	if err != nil {
		klog.ErrorS(err, "listing RBAC objects")
		return nil
	}
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		var t T
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &t); err != nil {
			klog.ErrorS(err, "an RBAC object that grants nothing", "kind", u.GetKind(), "name", u.GetName())
			continue
		}
		out = append(out, t)
	}
	return out
}
