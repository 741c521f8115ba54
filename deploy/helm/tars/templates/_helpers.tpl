{{/* The chart's name, or nameOverride. */}}
{{- define "tars.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: <release>-<name>, or just <release> when it contains the name. */}}
{{- define "tars.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tars.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tars.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "tars.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tars.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tars.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "tars.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tars.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tars.secretName" -}}
{{- default (include "tars.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "tars.claimName" -}}
{{- default (printf "%s-data" (include "tars.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}

{{/*
A configuration value as the text TARS_* expects. Helm reads numbers from values files as
float64, which would print 1048576 as 1.048576e+06: whole numbers print as integers.
*/}}
{{- define "tars.configValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: shutdown_timeout_seconds for the drain, the preStop sleep, and
10 s to exit.
*/}}
{{- define "tars.gracePeriod" -}}
{{- $drain := int (default 20 .root.Values.config.shutdown_timeout_seconds) -}}
{{- add $drain (int .preStop) 10 -}}
{{- end -}}

{{/* The pod-level settings both Deployments share. */}}
{{- define "tars.podCommon" -}}
serviceAccountName: {{ include "tars.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* The environment both Deployments share: the ConfigMap and the Secret. */}}
{{- define "tars.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "tars.fullname" . }}
  - secretRef:
      name: {{ include "tars.secretName" . }}
{{- end -}}

{{/* The data directory and /tmp (the root filesystem is read-only). */}}
{{- define "tars.volumes" -}}
volumes:
  - name: data
    {{- if .Values.persistence.enabled }}
    persistentVolumeClaim:
      claimName: {{ include "tars.claimName" . }}
    {{- else }}
    emptyDir: {}
    {{- end }}
  - name: tmp
    emptyDir: {}
{{- end -}}

{{- define "tars.volumeMounts" -}}
volumeMounts:
  - name: data
    mountPath: /var/lib/tars
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* The checksums that roll the pods when the ConfigMap or the chart's Secret changes. */}}
{{- define "tars.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}
