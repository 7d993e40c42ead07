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
{{- range $key := list "calendar" "deadlines" "notifications" "escalationPolicies" "alertmanager" }}
{{- if (get $v $key) }}
{{- $_ := set $config $key (get $v $key) }}
{{- end }}
{{- end }}
{{- $_ := set $config "timelineLimit" $v.timelineLimit }}
{{- $_ := set $config "detection" (dict "maxConcurrentEvaluations" $v.detection.maxConcurrentEvaluations) }}
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
{{- $_ := set $config "metrics" $metrics }}
{{- $_ := set $config "health" (dict "port" $v.health.port) }}
{{- $config = mergeOverwrite $config (deepCopy $v.extraConfig) }}
{{- toYaml $config }}
{{- end }}
