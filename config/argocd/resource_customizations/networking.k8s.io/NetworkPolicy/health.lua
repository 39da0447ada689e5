-- Argo CD health check for networking.k8s.io/NetworkPolicy, as Netloom realizes it. Kubernetes
-- gives a NetworkPolicy no status, so the Netloom operator keeps a summary on every policy, the
-- annotation netloom.io/realization: JSON {"generation": <the policy generation it describes>,
-- "mode": "Enforce" | "Audit", "state": "Realized" | "Progressing" | "Degraded", "message":
-- "..."}; mode is not needed here (the message of a realized audit-mode policy says so). The
-- details are in the PolicyRealization of the same namespace and name (kubectl get nlpr -A).
--   Healthy      state Realized, for the current metadata.generation
--   Progressing  no annotation yet; it describes another generation; state Progressing; or it
--                cannot be read
--   Degraded     state Degraded: a selected node failed to apply the policy or cannot enforce it
-- An annotation that cannot be read (not JSON, or no generation or state) is Progressing, not
-- Degraded: only the operator writes it, and it rewrites any value that differs from its own
-- summary when it next reconciles the policy (an edit of the policy is itself a reason to), so
-- a bad value (a hand edit, a newer or older operator) passes like a missing annotation, which
-- is Progressing too. Degraded stays the operator's verdict on the datapath alone.
--
-- Argo CD runs scripts from argocd-cm with the base and table libraries only (no string or
-- math library unless resource.customizations.useOpenLibs is set) and gives them no JSON module
-- (util/lua/lua.go). So the annotation is decoded here with what the base library has: string
-- comparison and concatenation. explode() finds each byte by binary search over the 256
-- one-byte strings (prefix .. b <= s holds exactly for the bytes b up to the next byte of s),
-- and a small JSON parser reads the bytes: any key order, any whitespace, unknown keys skipped.
-- The search costs O(n^2) in the annotation's length, so longer annotations than MAX_BYTES (the
-- operator's are a few hundred bytes) are not decoded.
local hs = {}

local ANNOTATION = "netloom.io/realization"
local MAX_BYTES = 4096

-- Every byte as a one-byte string, in byte order (there is no string.char): BYTES[b + 1].
local BYTES = {
  "\0", "\1", "\2", "\3", "\4", "\5", "\6", "\7", "\8", "\9", "\10", "\11", "\12", "\13", "\14", "\15",
  "\16", "\17", "\18", "\19", "\20", "\21", "\22", "\23", "\24", "\25", "\26", "\27", "\28", "\29", "\30", "\31",
  "\32", "\33", "\34", "\35", "\36", "\37", "\38", "\39", "\40", "\41", "\42", "\43", "\44", "\45", "\46", "\47",
  "\48", "\49", "\50", "\51", "\52", "\53", "\54", "\55", "\56", "\57", "\58", "\59", "\60", "\61", "\62", "\63",
  "\64", "\65", "\66", "\67", "\68", "\69", "\70", "\71", "\72", "\73", "\74", "\75", "\76", "\77", "\78", "\79",
  "\80", "\81", "\82", "\83", "\84", "\85", "\86", "\87", "\88", "\89", "\90", "\91", "\92", "\93", "\94", "\95",
  "\96", "\97", "\98", "\99", "\100", "\101", "\102", "\103", "\104", "\105", "\106", "\107", "\108", "\109", "\110", "\111",
  "\112", "\113", "\114", "\115", "\116", "\117", "\118", "\119", "\120", "\121", "\122", "\123", "\124", "\125", "\126", "\127",
  "\128", "\129", "\130", "\131", "\132", "\133", "\134", "\135", "\136", "\137", "\138", "\139", "\140", "\141", "\142", "\143",
  "\144", "\145", "\146", "\147", "\148", "\149", "\150", "\151", "\152", "\153", "\154", "\155", "\156", "\157", "\158", "\159",
  "\160", "\161", "\162", "\163", "\164", "\165", "\166", "\167", "\168", "\169", "\170", "\171", "\172", "\173", "\174", "\175",
  "\176", "\177", "\178", "\179", "\180", "\181", "\182", "\183", "\184", "\185", "\186", "\187", "\188", "\189", "\190", "\191",
  "\192", "\193", "\194", "\195", "\196", "\197", "\198", "\199", "\200", "\201", "\202", "\203", "\204", "\205", "\206", "\207",
  "\208", "\209", "\210", "\211", "\212", "\213", "\214", "\215", "\216", "\217", "\218", "\219", "\220", "\221", "\222", "\223",
  "\224", "\225", "\226", "\227", "\228", "\229", "\230", "\231", "\232", "\233", "\234", "\235", "\236", "\237", "\238", "\239",
  "\240", "\241", "\242", "\243", "\244", "\245", "\246", "\247", "\248", "\249", "\250", "\251", "\252", "\253", "\254", "\255",
}

-- The bytes of s as one-byte strings.
local function explode(s)
  local chars, prefix = {}, ""
  for i = 1, #s do
    -- The largest b with prefix .. BYTES[b] <= s is byte i of s (BYTES[1] always fits).
    local lo, hi = 1, 256
    while lo < hi do
      local mid = (lo + hi + 1) / 2
      mid = mid - mid % 1
      if prefix .. BYTES[mid] <= s then
        lo = mid
      else
        hi = mid - 1
      end
    end
    chars[i] = BYTES[lo]
    prefix = prefix .. BYTES[lo]
  end
  return chars
end

-- table.concat in slices: gopher-lua's puts every item on its data stack (5120 slots in Argo CD).
local function join(items)
  local parts = {}
  for i = 1, #items, 1024 do
    local j = i + 1023
    if j > #items then
      j = #items
    end
    table.insert(parts, table.concat(items, "", i, j))
  end
  return table.concat(parts)
end

local HEX = {}
for i = 0, 9 do
  HEX[BYTES[49 + i]] = i -- "0".."9"
end
for i = 0, 5 do
  HEX[BYTES[66 + i]] = 10 + i -- "A".."F"
  HEX[BYTES[98 + i]] = 10 + i -- "a".."f"
end
local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
local MAX_DEPTH = 20

-- Parses the JSON text in chars (RFC 8259); raises an error on anything else. Returns the
-- value and whether it is an object (objects and arrays are both Lua tables).
local function decode(chars)
  local pos = 1
  local objects = {}

  local function fail(why)
    error({ why = why .. " at byte " .. pos }, 0)
  end

  local function skipSpace()
    local c = chars[pos]
    while c == " " or c == "\t" or c == "\n" or c == "\r" do
      pos = pos + 1
      c = chars[pos]
    end
  end

  local function expect(c)
    if chars[pos] ~= c then
      fail("expected " .. c)
    end
    pos = pos + 1
  end

  local function isDigit(c)
    return c ~= nil and c >= "0" and c <= "9"
  end

  -- A code point as UTF-8 bytes.
  local function utf8(cp)
    if cp < 128 then
      return BYTES[cp + 1]
    elseif cp < 2048 then
      return BYTES[192 + (cp - cp % 64) / 64 + 1] .. BYTES[128 + cp % 64 + 1]
    elseif cp < 65536 then
      return BYTES[224 + (cp - cp % 4096) / 4096 + 1]
        .. BYTES[128 + ((cp - cp % 64) / 64) % 64 + 1]
        .. BYTES[128 + cp % 64 + 1]
    end
    return BYTES[240 + (cp - cp % 262144) / 262144 + 1]
      .. BYTES[128 + ((cp - cp % 4096) / 4096) % 64 + 1]
      .. BYTES[128 + ((cp - cp % 64) / 64) % 64 + 1]
      .. BYTES[128 + cp % 64 + 1]
  end

  local function hex4()
    local cp = 0
    for _ = 1, 4 do
      local d = HEX[chars[pos]]
      if d == nil then
        fail("bad \\u escape")
      end
      cp = cp * 16 + d
      pos = pos + 1
    end
    return cp
  end

  local function str()
    expect('"')
    local out = {}
    while true do
      local c = chars[pos]
      if c == nil then
        fail("unterminated string")
      elseif c == '"' then
        pos = pos + 1
        return join(out)
      elseif c < " " then
        fail("control character in string")
      elseif c == "\\" then
        local e = chars[pos + 1]
        if e == "u" then
          pos = pos + 2
          local cp = hex4()
          if cp >= 55296 and cp < 56320 and chars[pos] == "\\" and chars[pos + 1] == "u" then
            pos = pos + 2
            local low = hex4()
            if low >= 56320 and low < 57344 then
              cp = 65536 + (cp - 55296) * 1024 + (low - 56320)
            else
              table.insert(out, utf8(65533))
              cp = low
            end
          end
          if cp >= 55296 and cp < 57344 then
            cp = 65533 -- a lone surrogate
          end
          table.insert(out, utf8(cp))
        elseif ESCAPES[e] ~= nil then
          table.insert(out, ESCAPES[e])
          pos = pos + 2
        else
          fail("bad escape")
        end
      else
        table.insert(out, c)
        pos = pos + 1
      end
    end
  end

  local function num()
    local out = {}
    local function take()
      table.insert(out, chars[pos])
      pos = pos + 1
    end
    local function digits()
      if not isDigit(chars[pos]) then
        fail("bad number")
      end
      while isDigit(chars[pos]) do
        take()
      end
    end
    if chars[pos] == "-" then
      take()
    end
    if chars[pos] == "0" then
      take()
    else
      digits()
    end
    if chars[pos] == "." then
      take()
      digits()
    end
    if chars[pos] == "e" or chars[pos] == "E" then
      take()
      if chars[pos] == "+" or chars[pos] == "-" then
        take()
      end
      digits()
    end
    return tonumber(join(out))
  end

  local function word(w, v)
    for i = 1, #w do
      if chars[pos] ~= w[i] then
        fail("unexpected character")
      end
      pos = pos + 1
    end
    return v
  end

  local value

  local function object(depth)
    expect("{")
    local out = {}
    objects[out] = true
    skipSpace()
    if chars[pos] == "}" then
      pos = pos + 1
      return out
    end
    while true do
      skipSpace()
      local key = str()
      skipSpace()
      expect(":")
      out[key] = value(depth + 1)
      skipSpace()
      if chars[pos] == "}" then
        pos = pos + 1
        return out
      end
      expect(",")
    end
  end

  local function array(depth)
    expect("[")
    local out = {}
    skipSpace()
    if chars[pos] == "]" then
      pos = pos + 1
      return out
    end
    while true do
      table.insert(out, value(depth + 1))
      skipSpace()
      if chars[pos] == "]" then
        pos = pos + 1
        return out
      end
      expect(",")
    end
  end

  -- null decodes to false: a nil would end a Lua array.
  function value(depth)
    if depth > MAX_DEPTH then
      fail("nested too deeply")
    end
    skipSpace()
    local c = chars[pos]
    if c == "{" then
      return object(depth)
    elseif c == "[" then
      return array(depth)
    elseif c == '"' then
      return str()
    elseif c == "-" or isDigit(c) then
      return num()
    elseif c == "t" then
      return word({ "t", "r", "u", "e" }, true)
    elseif c == "f" then
      return word({ "f", "a", "l", "s", "e" }, false)
    elseif c == "n" then
      return word({ "n", "u", "l", "l" }, false)
    end
    fail("unexpected " .. (c == nil and "end" or "character"))
  end

  local v = value(1)
  skipSpace()
  if pos <= #chars then
    fail("unexpected character after the JSON value")
  end
  return v, objects[v] == true
end

-- The annotation as {generation, state, message}, or nil and why it cannot be read.
local function read(text)
  if #text > MAX_BYTES then
    return nil, "longer than " .. MAX_BYTES .. " bytes"
  end
  local ok, v, isObject = pcall(decode, explode(text))
  if not ok then
    if type(v) == "table" and v.why ~= nil then
      return nil, "not JSON: " .. v.why
    end
    return nil, "not JSON"
  end
  if not isObject then
    return nil, "not a JSON object"
  end
  if type(v.generation) ~= "number" or v.generation < 0 or v.generation % 1 ~= 0 then
    return nil, "no generation"
  end
  if v.state ~= "Realized" and v.state ~= "Progressing" and v.state ~= "Degraded" then
    if type(v.state) == "string" then
      return nil, "unknown state " .. v.state
    end
    return nil, "no state"
  end
  if type(v.message) ~= "string" then
    v.message = ""
  end
  return v
end

local generation = obj.metadata.generation or 0
local annotations = obj.metadata.annotations or {}
local text = annotations[ANNOTATION]

if text == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Netloom to realize the policy (no " .. ANNOTATION .. " annotation yet)"
  return hs
end

local realization, why = read(text)
if realization == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Netloom to rewrite the " .. ANNOTATION .. " annotation, which cannot be read ("
    .. why .. ")"
  return hs
end

if realization.generation ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Netloom to realize generation " .. generation .. " (the " .. ANNOTATION
    .. " annotation describes generation " .. realization.generation .. ")"
  return hs
end

local message = realization.message
if realization.state == "Realized" then
  hs.status = "Healthy"
  if message == "" then
    message = "Realized"
  end
elseif realization.state == "Degraded" then
  hs.status = "Degraded"
  if message == "" then
    message = "Netloom cannot realize the policy"
  end
else
  hs.status = "Progressing"
  if message == "" then
    message = "Netloom is realizing the policy"
  end
end
hs.message = message
return hs
