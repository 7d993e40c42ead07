{{/* The chart name, or nameOverride. */}}
{{- define "incident-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name: the release name, with the chart name appended unless it is already in it. */}}
{{- define "incident-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "incident-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "incident-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "incident-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "incident-operator.labels" -}}
helm.sh/chart: {{ include "incident-operator.chart" . }}
{{ include "incident-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: incident-operator
{{- end }}

{{- define "incident-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "incident-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "incident-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The operator configuration file (operator/incident_operator/config.py reads it; unknown keys are
refused there, so only keys the operator knows are written). Empty values are left out and the
operator's defaults apply.
*/}}
{{- define "incident-operator.config" -}}
{{- $v := .Values }}
{{- $config := dict }}
{{- if $v.watchNamespaces }}
{{- $_ := set $config "namespaces" $v.watchNamespaces }}
{{- end }}
{{- $prom := dict "url" $v.prometheus.url }}
{{- range $key := list "externalURL" "bearerTokenFile" "caFile" }}
{{- if (get $v.prometheus $key) }}
{{- $_ := set $prom $key (get $v.prometheus $key) }}
{{- end }}
{{- end }}
{{- if $v.prometheus.insecureSkipVerify }}
{{- $_ := set $prom "insecureSkipVerify" true }}
{{- end }}
{{- $_ := set $prom "timeoutSeconds" $v.prometheus.timeoutSeconds }}
{{- $_ := set $config "prometheus" $prom }}
{{- if $v.grafana.url }}
{{- $_ := set $config "grafana" (dict "url" $v.grafana.url) }}
{{- end }}
{{- range $key := list "calendar" "deadlines" "notifications" "escalationPolicies" }}
{{- if (get $v $key) }}
{{- $_ := set $config $key (get $v $key) }}
{{- end }}
{{- end }}
{{- if $v.alertmanager }}
{{- $alertmanager := deepCopy $v.alertmanager }}
{{- if include "incident-operator.alertmanager.enabled" . }}
{{- include "incident-operator.alertmanager.validate" . }}
{{- $_ := set $alertmanager "bearerTokenFile" (printf "%s/token" (include "incident-operator.alertmanager.tokenDir" .)) }}
{{- $_ := set $alertmanager "namespace" (include "incident-operator.alertmanager.namespace" .) }}
{{- end }}
{{- $_ := set $config "alertmanager" $alertmanager }}
{{- end }}
{{- $_ := set $config "timelineLimit" $v.timelineLimit }}
{{- $_ := set $config "detection" $v.detection }}
{{- $templates := dict }}
{{- if $v.templates.configMap }}
{{- $_ := set $templates "configMap" $v.templates.configMap }}
{{- end }}
{{- if $v.templates.namespace }}
{{- $_ := set $templates "namespace" $v.templates.namespace }}
{{- end }}
{{- if $templates }}
{{- $_ := set $config "templates" $templates }}
{{- end }}
{{- $metrics := dict "port" $v.metrics.port }}
{{- if $v.metrics.newSeriesDelay }}
{{- $_ := set $metrics "newSeriesDelay" $v.metrics.newSeriesDelay }}
{{- end }}
{{- if $v.metrics.responseObjectives }}
{{- $_ := set $metrics "responseObjectives" $v.metrics.responseObjectives }}
{{- end }}
{{- $_ := set $config "metrics" $metrics }}
{{- $_ := set $config "health" (dict "port" $v.health.port) }}
{{- $config = mergeOverwrite $config (deepCopy $v.extraConfig) }}
{{- toYaml $config }}
{{- end }}

{{/*
The Alertmanager webhook receiver (docs/alertmanager.md). The `alertmanager` value is the operator
configuration's block; `alertmanagerReceiver` holds what only the chart uses (the token Secret, the
Service). "true" when the receiver is enabled, empty otherwise.
*/}}
{{- define "incident-operator.alertmanager.enabled" -}}
{{- if and .Values.alertmanager (get .Values.alertmanager "enabled") }}true{{ end }}
{{- end }}

{{/* Where the token Secret is mounted; the configuration's bearerTokenFile is <this>/token. */}}
{{- define "incident-operator.alertmanager.tokenDir" -}}
/var/run/secrets/incident-operator/alertmanager
{{- end }}

{{/* The port the receiver listens on (the operator's default is 8082). */}}
{{- define "incident-operator.alertmanager.port" -}}
{{- int (get .Values.alertmanager "port" | default 8082) }}
{{- end }}

{{/* The URL path Alertmanager posts to (the operator's default is /webhooks/alertmanager). */}}
{{- define "incident-operator.alertmanager.path" -}}
{{- get .Values.alertmanager "path" | default "/webhooks/alertmanager" }}
{{- end }}

{{/* Where incidents from alerts are created: alertmanager.namespace, else the first watched
namespace, else the release namespace. */}}
{{- define "incident-operator.alertmanager.namespace" -}}
{{- get .Values.alertmanager "namespace" | default (first .Values.watchNamespaces) | default .Release.Namespace }}
{{- end }}

{{/* The receiver's Service: <fullname>-alertmanager (the fullname shortened so it stays a DNS label). */}}
{{- define "incident-operator.alertmanager.serviceName" -}}
{{- printf "%s-alertmanager" (include "incident-operator.fullname" . | trunc 50 | trimSuffix "-") }}
{{- end }}

{{/* Refuses, at render time, what the operator would refuse at start-up (or what could never work). */}}
{{- define "incident-operator.alertmanager.validate" -}}
{{- $am := .Values.alertmanager }}
{{- $receiver := .Values.alertmanagerReceiver | default dict }}
{{- $secret := $receiver.tokenSecret | default dict }}
{{- if not $secret.name }}
{{- fail (printf "alertmanager.enabled is true but alertmanagerReceiver.tokenSecret.name is empty: the receiver never accepts unauthenticated posts. Create a Secret in namespace %s holding the bearer token (e.g. kubectl -n %s create secret generic incident-operator-alertmanager --from-literal=token=\"$(openssl rand -hex 32)\") and set alertmanagerReceiver.tokenSecret.name (and .key, default token)" .Release.Namespace .Release.Namespace) }}
{{- end }}
{{- if or (get $am "bearerTokenFile") (get $am "tokenSecretRef") }}
{{- fail "alertmanager.bearerTokenFile and alertmanager.tokenSecretRef are set by the chart: leave them out and name the token Secret in alertmanagerReceiver.tokenSecret (it is mounted and bearerTokenFile points at it)" }}
{{- end }}
{{- $namespace := include "incident-operator.alertmanager.namespace" . }}
{{- if and .Values.watchNamespaces (not (has $namespace .Values.watchNamespaces)) }}
{{- fail (printf "alertmanager.namespace %q is not in watchNamespaces (%s): the operator would refuse to start, since incidents created there would never be reconciled. Set alertmanager.namespace to a watched namespace, or add it to watchNamespaces" $namespace (join ", " .Values.watchNamespaces)) }}
{{- end }}
{{- $port := int (include "incident-operator.alertmanager.port" .) }}
{{- if or (eq $port (int .Values.metrics.port)) (eq $port (int .Values.health.port)) }}
{{- fail (printf "alertmanager.port %d is already used by metrics.port or health.port: choose another port" $port) }}
{{- end }}
{{- end }}
