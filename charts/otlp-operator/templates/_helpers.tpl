{{/*
Names, labels, images, RBAC rules and webhook TLS material shared by the templates.
Every helper is namespaced with "otlp-operator." so it cannot collide with a parent chart's.
*/}}

{{- define "otlp-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object name prefix. Capped at 40 characters so the longest derived name ("-webhook-tls") still
fits in the 63 characters of a DNS label.
*/}}
{{- define "otlp-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "otlp-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otlp-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otlp-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "otlp-operator.labels" -}}
helm.sh/chart: {{ include "otlp-operator.chart" . }}
{{ include "otlp-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: otlp-operator
{{- end }}

{{- define "otlp-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "otlp-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "repository@digest" when a digest is set, else "repository:tag" with the appVersion as default tag. */}}
{{- define "otlp-operator.imageRef" -}}
{{- $image := index . 0 }}
{{- $appVersion := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $appVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "otlp-operator.image" -}}
{{- include "otlp-operator.imageRef" (list .Values.image .Chart.AppVersion) }}
{{- end }}

{{- define "otlp-operator.agentImage" -}}
{{- include "otlp-operator.imageRef" (list .Values.agent.image .Chart.AppVersion) }}
{{- end }}

{{- define "otlp-operator.clusterWide" -}}
{{- if not .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/* A Prometheus Operator namespaceSelector: every namespace, or the watched ones. */}}
{{- define "otlp-operator.watchedNamespaceSelector" -}}
{{- if include "otlp-operator.clusterWide" . }}
any: true
{{- else }}
matchNames:
  {{- toYaml .Values.watchNamespaces | nindent 2 }}
{{- end }}
{{- end }}

{{/* "true" when the operator injects sidecars (the pod webhook is served). */}}
{{- define "otlp-operator.injection" -}}
{{- if and .Values.webhook.enabled .Values.webhook.mutating.enabled }}true{{ end }}
{{- end }}

{{/* The operator's command line (its image's entrypoint is `otlp-operator`). */}}
{{- define "otlp-operator.args" -}}
- run
{{- if include "otlp-operator.clusterWide" . }}
- --all-namespaces
{{- else }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- end }}
- --health-port={{ .Values.healthPort }}
- --peering={{ include "otlp-operator.fullname" . }}
- --peering-lifetime={{ .Values.peering.lifetime }}
{{- if not .Values.agent.refreshPods }}
- --no-pod-refresh
{{- end }}
- --log-format={{ .Values.logFormat }}
{{- if eq .Values.logLevel "verbose" }}
- --verbose
{{- else if eq .Values.logLevel "debug" }}
- --debug
{{- end }}
{{- if .Values.webhook.enabled }}
- --webhook-port={{ .Values.webhook.port }}
{{- include "otlp-operator.tlsArgs" . | nindent 0 }}
{{- if .Values.webhook.mutating.enabled }}
- --inject-sidecars
{{- end }}
{{- end }}
{{- end }}
