{{/*
The operator's permissions: exactly the API calls it makes, and nothing more. docs/operations.md lists
them with their reasons; tests/unit/test_chart_rbac.py derives the same list from the operator's code
(operator/otlp_operator/reconcile/kube.py and its kopf handlers) and tests/e2e/test_chart_install.py checks every
call the running operator made against it. Used by the ClusterRole (cluster-wide) and by the Role in each
watched namespace.
*/}}
{{- define "otlp-operator.rules" -}}
# Pipelines: kopf lists and watches them and patches its bookkeeping annotations; reconcile reads one
# by name when a child changes.
- apiGroups: ["telemetry.otlp-operator.io"]
  resources: ["otlppipelines"]
  verbs: ["get", "list", "watch", "patch"]
# The operator's report (conditions, endpoints, observedGeneration), as a JSON merge patch.
- apiGroups: ["telemetry.otlp-operator.io"]
  resources: ["otlppipelines/status"]
  verbs: ["patch"]
# The agents' objects: kopf watches them (pipeline label) to restore deleted or edited ones; reconcile
# reads, creates, patches, lists (pipeline label) and deletes them.
- apiGroups: [""]
  resources: ["configmaps", "persistentvolumeclaims", "serviceaccounts", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["daemonsets", "deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The agent pods: which config each runs (list, then asking each agent), and with agent.refreshPods the
# config-hash annotation that makes their kubelet refresh the config at once. With sidecar injection, also
# the pods running a stale sidecar.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"{{ if .Values.agent.refreshPods }}, "patch"{{ end }}]
# Events on pipelines (kubectl describe otlpp), and on pods that asked for a sidecar and got none.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if not (include "otlp-operator.clusterWide" .) }}
# Peering between the replicas (one handles pipelines): kopf watches the peering objects and patches its
# own entry into the one of this release.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  resourceNames: [{{ include "otlp-operator.fullname" . | quote }}]
  verbs: ["patch"]
{{- end }}
{{- end }}

{{/*
Cluster-wide only: kopf watches CustomResourceDefinitions to notice the OTLPPipeline CRD being
(re)installed while it runs. A namespaced install cannot grant it in a Role; kopf then logs a warning once
and relies on its start-up discovery, which is enough.
*/}}
{{- define "otlp-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# Peering between the replicas (one handles pipelines), as in the namespaced rules.
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  resourceNames: [{{ include "otlp-operator.fullname" . | quote }}]
  verbs: ["patch"]
{{- end }}

{{/*
The operator's own webhook certificate (tlsMode "operator"): it puts its CA into the caBundle of this
release's two webhook configurations, and nothing else (resourceNames).
*/}}
{{- define "otlp-operator.webhookConfigurationRules" -}}
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations"{{ if include "otlp-operator.injection" . }}, "mutatingwebhookconfigurations"{{ end }}]
  resourceNames: [{{ include "otlp-operator.fullname" . | quote }}]
  verbs: ["get", "patch"]
{{- end }}

{{/* "true" when the operator issues its own webhook certificate. */}}
{{- define "otlp-operator.ownTls" -}}
{{- if and .Values.webhook.enabled (eq (include "otlp-operator.tlsMode" .) "operator") }}true{{ end }}
{{- end }}

{{/*
Sidecar injection only: kopf indexes the namespaces' `inject` annotations. Namespaces are cluster-scoped,
so this is granted by a ClusterRole even when the operator watches only some namespaces.
*/}}
{{- define "otlp-operator.namespaceRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}

{{/* "true" when a ClusterRole is needed: cluster-wide, sidecar injection, or the operator's own TLS. */}}
{{- define "otlp-operator.needsClusterRole" -}}
{{- if and .Values.rbac.create (or (include "otlp-operator.clusterWide" .) (include "otlp-operator.injection" .) (include "otlp-operator.ownTls" .)) }}true{{ end }}
{{- end }}
