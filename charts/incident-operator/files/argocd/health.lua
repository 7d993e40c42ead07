-- Argo CD health check for incidents.buttercream.io Incident, DetectionRule and EscalationPolicy
-- (one script for the three kinds; see docs/gitops.md). It reads the same conditions kstatus does:
--   not observed yet (status.observedGeneration < metadata.generation) -> Progressing
--   Stalled=True (Invalid spec, refused query, unusable channel)         -> Degraded
--   Degraded=True (a DetectionRule whose last evaluation failed)         -> Degraded
--   Reconciling=True (work the operator retries on its own)              -> Progressing
--   Ready=True                                                           -> Healthy
-- An open or escalated Incident is Healthy: the resource is tracked as it should be; its urgency is
-- the on-call's business, not a reason to mark the Application Degraded. Lua 5.1 (gopher-lua).
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted"
  return hs
end

local generation = obj.metadata.generation or 0
local observed = 0
if obj.status ~= nil and obj.status.observedGeneration ~= nil then
  observed = obj.status.observedGeneration
end
if observed < generation then
  hs.status = "Progressing"
  hs.message = string.format("Waiting for the operator to observe generation %d", generation)
  return hs
end

local stalled = condition("Stalled")
if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. stalled.message
  return hs
end

local degraded = condition("Degraded")
if isTrue(degraded) then
  hs.status = "Degraded"
  hs.message = degraded.reason .. ": " .. degraded.message
  return hs
end

local reconciling = condition("Reconciling")
if isTrue(reconciling) then
  hs.status = "Progressing"
  hs.message = reconciling.reason .. ": " .. reconciling.message
  return hs
end

local ready = condition("Ready")
if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. ready.message
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the operator"
return hs
