-- dsmipv4.lua: Wireshark/tshark dissector for the Dual-Stack Mobile IPv4 extension (RFC 5454, type 152).
--
-- Wireshark's built-in Mobile IP dissector ("mip", UDP 434) names extension type 152 but shows its body
-- as raw bytes. This script is a post-dissector: after "mip" has run, it walks the extensions of every
-- Registration Request (type 1) and Registration Reply (type 3) in the frame and adds a "DSMIPv4" tree
-- with one subtree per type-152 extension:
--
--   subtype 1, IPv6 Prefix Request (RRQ, RFC 5454 §2.1):
--       Type=152 Length=18 Subtype=1 PrefixLength Prefix(16)
--   subtype 2, IPv6 Prefix Reply (RRP, §2.2):
--       Type=152 Length=20 Subtype=2 Code PrefixLength Reserved Prefix(16)
--   subtype 3, IPv6 Tunneling Mode (RRQ, §2.3):
--       Type=152 Length=2 Subtype=3 Reserved
--
-- Prefix Length 255 means the prefix field carries a link-local address (§2.2; DHCPv6-PD bootstrap,
-- §3.7.1). Because it is a post-dissector it works wherever "mip" runs (UDP 434 in either direction,
-- Decode As). Malformed or truncated extensions are reported as expert info, never as Lua errors.
--
-- Usage:  tshark -X lua_script:tools/wireshark/dsmipv4.lua -r capture.pcap -Y dsmipv4
-- or copy the file into ~/.local/lib/wireshark/plugins/ (see docs/wireshark.md).
-- Tested with tshark 4.0.17 (Lua 5.2). It uses neither bit32 nor bitwise operators, so Lua 5.3/5.4
-- builds of later versions can load it too. Tests: tests/unit/test_wireshark_dissector.py.

-- Loading the script twice (say, from the personal plugins folder and with -X lua_script:) would fail
-- with "there cannot be two protocols with the same name": the second copy quietly does nothing.
local created, dsmipv4 = pcall(Proto, "dsmipv4", "Dual-Stack Mobile IPv4 Extension (RFC 5454)")
if not created then
    return
end

local DSMIPV4_TYPE = 152
local LINK_LOCAL_PREFIX_LENGTH = 255
local MN_HA_AUTH_TYPE = 32
local REGISTRATION_REQUEST = 1
local REGISTRATION_REPLY = 3
local FIXED_PART = { [REGISTRATION_REQUEST] = 24, [REGISTRATION_REPLY] = 20 } -- RFC 5944 §3.3, §3.4
local FLAG_D_BIT = 5 -- 0x20, co-located care-of address (RFC 5944 §3.3)
-- Long-format extensions (RFC 5944 §1.10): Type, Sub-Type/Reserved, Length(2). Everything else
-- (simple TLV §1.9 and short format §1.11) has a one-byte Length right after the Type.
local LONG_FORMAT = { [36] = true, [37] = true, [38] = true, [47] = true }

local SUBTYPE_PREFIX_REQUEST = 1
local SUBTYPE_PREFIX_REPLY = 2
local SUBTYPE_TUNNELING_MODE = 3

local subtype_names = {
    [SUBTYPE_PREFIX_REQUEST] = "IPv6 Prefix Request",
    [SUBTYPE_PREFIX_REPLY] = "IPv6 Prefix Reply",
    [SUBTYPE_TUNNELING_MODE] = "IPv6 Tunneling Mode",
}

-- Value of the Length field for each known subtype (it counts the Subtype byte, short format §1.11).
local expected_length = {
    [SUBTYPE_PREFIX_REQUEST] = 18,
    [SUBTYPE_PREFIX_REPLY] = 20,
    [SUBTYPE_TUNNELING_MODE] = 2,
}

-- Message each subtype belongs in.
local expected_message = {
    [SUBTYPE_PREFIX_REQUEST] = REGISTRATION_REQUEST,
    [SUBTYPE_PREFIX_REPLY] = REGISTRATION_REPLY,
    [SUBTYPE_TUNNELING_MODE] = REGISTRATION_REQUEST,
}

local message_names = {
    [REGISTRATION_REQUEST] = "Registration Request",
    [REGISTRATION_REPLY] = "Registration Reply",
}

-- IPv6 Prefix Reply codes (RFC 5454 §2.2, registry §5; agents/mip/wire/codes.py PrefixReplyCode):
-- 0-7 accept, 8-255 reject.
local code_ranges = {
    { 0, 0, "Accepted, IPv6 tunnelled to the home address" },
    { 1, 1, "Accepted, IPv6 tunnelled to the care-of address" },
    { 2, 7, "Reserved accept code" },
    { 8, 8, "Rejected, reason unspecified" },
    { 9, 9, "Rejected, administratively prohibited" },
    { 10, 255, "Reserved reject code" },
}
local ACCEPT_CODE_MAX = 7

local f = {
    extension = ProtoField.none("dsmipv4.extension", "DSMIPv4 Extension"),
    type = ProtoField.uint8("dsmipv4.type", "Type", base.DEC),
    length = ProtoField.uint8("dsmipv4.length", "Length", base.DEC),
    subtype = ProtoField.uint8("dsmipv4.subtype", "Subtype", base.DEC, subtype_names),
    code = ProtoField.uint8("dsmipv4.code", "Code", base.RANGE_STRING, code_ranges),
    accepted = ProtoField.bool("dsmipv4.accepted", "Accepted", base.NONE, nil, nil,
        "Code is in the accept range 0-7 (RFC 5454 §2.2)"),
    prefix_len = ProtoField.uint8("dsmipv4.prefix_len", "Prefix Length", base.DEC, nil, nil,
        "0-128, or 255 for a link-local address (RFC 5454 §2.2)"),
    link_local = ProtoField.bool("dsmipv4.link_local", "Link-local address", base.NONE, nil, nil,
        "Prefix Length is 255: the prefix field holds a link-local address (RFC 5454 §2.2, §3.7.1)"),
    reserved = ProtoField.uint8("dsmipv4.reserved", "Reserved", base.HEX),
    prefix = ProtoField.ipv6("dsmipv4.prefix", "Mobile IPv6 Network Prefix"),
    data = ProtoField.bytes("dsmipv4.data", "Data"),
}
dsmipv4.fields = { f.extension, f.type, f.length, f.subtype, f.code, f.accepted, f.prefix_len,
    f.link_local, f.reserved, f.prefix, f.data }

local MALFORMED, PROTOCOL, UNDECODED = expert.group.MALFORMED, expert.group.PROTOCOL, expert.group.UNDECODED
local ERROR, WARN, NOTE = expert.severity.ERROR, expert.severity.WARN, expert.severity.NOTE

local e = {
    truncated = ProtoExpert.new("dsmipv4.truncated", "DSMIPv4 extension runs past the end of the message",
        MALFORMED, ERROR),
    capture_cut = ProtoExpert.new("dsmipv4.capture_cut",
        "DSMIPv4 extension cut short by the capture length (snaplen)", UNDECODED, WARN),
    no_subtype = ProtoExpert.new("dsmipv4.no_subtype", "DSMIPv4 extension with Length 0 has no subtype",
        MALFORMED, ERROR),
    bad_length = ProtoExpert.new("dsmipv4.bad_length", "Wrong Length for this DSMIPv4 subtype",
        MALFORMED, ERROR),
    bad_prefix_len = ProtoExpert.new("dsmipv4.bad_prefix_len", "Prefix Length is neither 0-128 nor 255",
        MALFORMED, ERROR),
    unknown_subtype = ProtoExpert.new("dsmipv4.unknown_subtype", "Unknown DSMIPv4 subtype",
        UNDECODED, NOTE),
    wrong_message = ProtoExpert.new("dsmipv4.wrong_message", "DSMIPv4 subtype in the wrong message",
        PROTOCOL, WARN),
    host_bits = ProtoExpert.new("dsmipv4.host_bits", "Bits past the prefix length are not zero",
        PROTOCOL, WARN),
    not_link_local = ProtoExpert.new("dsmipv4.not_link_local",
        "Prefix Length 255 but the address is not link-local (fe80::/10)", PROTOCOL, WARN),
    tunneling_mode_without_d = ProtoExpert.new("dsmipv4.tunneling_mode_without_d",
        "IPv6 Tunneling Mode without a co-located care-of address (D flag)", PROTOCOL, WARN),
    tunneling_mode_repeated = ProtoExpert.new("dsmipv4.tunneling_mode_repeated",
        "More than one IPv6 Tunneling Mode extension", PROTOCOL, WARN),
    after_mn_ha = ProtoExpert.new("dsmipv4.after_mn_ha",
        "DSMIPv4 extension after the MN-HA authentication extension", PROTOCOL, WARN),
    rejected = ProtoExpert.new("dsmipv4.rejected", "IPv6 prefix rejected", expert.group.RESPONSE_CODE,
        NOTE),
    reserved_nonzero = ProtoExpert.new("dsmipv4.reserved_nonzero", "Reserved field is not zero",
        PROTOCOL, NOTE),
    extensions_cut = ProtoExpert.new("dsmipv4.extensions_cut",
        "Extension list malformed before its end; later DSMIPv4 extensions may be missed", MALFORMED, WARN),
    internal = ProtoExpert.new("dsmipv4.internal_error", "DSMIPv4 dissector internal error",
        MALFORMED, ERROR),
}
dsmipv4.experts = { e.truncated, e.capture_cut, e.no_subtype, e.bad_length, e.bad_prefix_len,
    e.unknown_subtype, e.wrong_message, e.host_bits, e.not_link_local, e.tunneling_mode_without_d,
    e.tunneling_mode_repeated, e.after_mn_ha, e.rejected, e.reserved_nonzero, e.extensions_cut, e.internal }

local mip_field = Field.new("mip")
local udp_length_field = Field.new("udp.length")

---------------------------------------------------------------------------------------------------------
-- Helpers. `msg` is a TvbRange over the captured bytes of one MIP message; `msg_len` is its real
-- (reported) length. Every read goes through these and is bounded by the captured length.

local function captured(msg)
    return msg:len()
end

local function u8(msg, offset)
    return msg:range(offset, 1):uint()
end

-- Plain arithmetic instead of bit32 (absent from Lua 5.3/5.4) or bitwise operators (absent from 5.2).
local POWER_OF_TWO = { [0] = 1, 2, 4, 8, 16, 32, 64, 128, 256 }

local function bit_set(byte, bit)
    return math.floor(byte / POWER_OF_TWO[bit]) % 2 == 1
end

-- True if any bit past `prefix_length` is set in the 16-byte address at `offset`.
local function has_host_bits(msg, offset, prefix_length)
    if prefix_length >= 128 then
        return false
    end
    for index = 0, 15 do
        local byte = u8(msg, offset + index)
        local keep = prefix_length - 8 * index -- network bits within this byte
        if keep <= 0 then
            if byte ~= 0 then
                return true
            end
        elseif keep < 8 then
            if byte % POWER_OF_TWO[8 - keep] ~= 0 then -- the low (8 - keep) bits are host bits
                return true
            end
        end
    end
    return false
end

local function is_link_local(msg, offset)
    -- fe80::/10
    return u8(msg, offset) == 0xFE and u8(msg, offset + 1) >= 0x80 and u8(msg, offset + 1) < 0xC0
end

-- Add Prefix Length and the generated link_local flag; return the Prefix Length.
local function add_prefix_length(subtree, msg, offset)
    local prefix_length = u8(msg, offset)
    local length_item = subtree:add(f.prefix_len, msg:range(offset, 1))
    local link_local = prefix_length == LINK_LOCAL_PREFIX_LENGTH
    subtree:add(f.link_local, msg:range(offset, 1), link_local):set_generated()
    if link_local then
        length_item:append_text(" (link-local address)")
    elseif prefix_length > 128 then
        length_item:add_proto_expert_info(e.bad_prefix_len,
            "Prefix Length " .. prefix_length .. " is neither 0-128 nor 255 (RFC 5454 §2.1)")
    end
    return prefix_length
end

-- Add the 16-byte prefix; return a short text for the subtree title.
local function add_prefix(subtree, msg, offset, prefix_length)
    local prefix_item = subtree:add(f.prefix, msg:range(offset, 16))
    local address = tostring(msg:range(offset, 16):ipv6())
    if prefix_length == LINK_LOCAL_PREFIX_LENGTH then
        if not is_link_local(msg, offset) then
            prefix_item:add_proto_expert_info(e.not_link_local)
        end
        return "link-local " .. address
    end
    if prefix_length > 128 then
        return address .. " (invalid prefix length " .. prefix_length .. ")"
    end
    prefix_item:append_text("/" .. prefix_length)
    if has_host_bits(msg, offset, prefix_length) then
        prefix_item:add_proto_expert_info(e.host_bits,
            "Bits past the prefix length are not zero (RFC 5454 §2.1: MUST be 0, receiver ignores them)")
    end
    return address .. "/" .. prefix_length
end

local function add_reserved(subtree, msg, offset)
    local item = subtree:add(f.reserved, msg:range(offset, 1))
    if u8(msg, offset) ~= 0 then
        item:add_proto_expert_info(e.reserved_nonzero)
    end
end

---------------------------------------------------------------------------------------------------------
-- One type-152 extension at `start` (its Type byte). `state` carries per-message facts.
-- Returns a short summary word for the Info column, or nil.

local function dissect_extension(root, msg, msg_len, start, state)
    local available = captured(msg) - start -- captured bytes from the Type byte on (>= 1)
    local header_len = math.min(available, 2)
    local subtree = root:add(f.extension, msg:range(start, header_len))
    subtree:add(f.type, msg:range(start, 1))

    if msg_len - start < 2 then
        subtree:set_text("DSMIPv4 Extension (truncated: no Length byte)")
        subtree:add_proto_expert_info(e.truncated, "DSMIPv4 extension has no Length byte")
        return "malformed"
    end
    if available < 2 then
        subtree:add_proto_expert_info(e.capture_cut)
        return nil
    end

    local length = u8(msg, start + 1)
    local length_item = subtree:add(f.length, msg:range(start + 1, 1))
    local total = 2 + length
    local body_available = math.min(available, total) - 2 -- captured body bytes (>= 0)
    subtree:set_len(2 + body_available)

    if length == 0 then
        subtree:set_text("DSMIPv4 Extension (malformed: Length 0)")
        length_item:add_proto_expert_info(e.no_subtype, "Length 0: no subtype (RFC 5454 §2, RFC 5944 §1.11)")
        return "malformed"
    end
    if start + total > msg_len then
        subtree:set_text("DSMIPv4 Extension (truncated)")
        if body_available > 0 then
            subtree:add(f.data, msg:range(start + 2, body_available))
        end
        length_item:add_proto_expert_info(e.truncated, string.format(
            "Length %d runs past the end of the message (%d bytes left after the Length byte)",
            length, msg_len - start - 2))
        return "malformed"
    end
    if body_available < length then
        subtree:set_text("DSMIPv4 Extension (cut short by the capture)")
        if body_available > 0 then
            subtree:add(f.data, msg:range(start + 2, body_available))
        end
        subtree:add_proto_expert_info(e.capture_cut)
        return nil
    end

    local subtype = u8(msg, start + 2)
    local subtype_item = subtree:add(f.subtype, msg:range(start + 2, 1))
    local name = subtype_names[subtype]
    if name == nil then
        subtree:set_text(string.format("DSMIPv4 Extension: unknown subtype %d", subtype))
        if length > 1 then
            subtree:add(f.data, msg:range(start + 3, length - 1))
        end
        subtype_item:add_proto_expert_info(e.unknown_subtype,
            string.format("Unknown DSMIPv4 subtype %d (RFC 5454 defines 1-3)", subtype))
        return "unknown subtype"
    end
    if length ~= expected_length[subtype] then
        subtree:set_text(string.format("DSMIPv4 Extension: %s (malformed: Length %d)", name, length))
        if length > 1 then
            subtree:add(f.data, msg:range(start + 3, length - 1))
        end
        length_item:add_proto_expert_info(e.bad_length, string.format(
            "%s needs Length %d, got %d (RFC 5454 §2)", name, expected_length[subtype], length))
        return "malformed"
    end
    if expected_message[subtype] ~= state.message_type then
        subtype_item:add_proto_expert_info(e.wrong_message, string.format("%s belongs in a %s, not a %s",
            name, message_names[expected_message[subtype]], message_names[state.message_type]))
    end
    if state.after_mn_ha then
        subtree:add_proto_expert_info(e.after_mn_ha,
            "DSMIPv4 extension after the MN-HA authentication (RFC 5454 §3.1: it must come before)")
    end

    if subtype == SUBTYPE_PREFIX_REQUEST then
        local prefix_length = add_prefix_length(subtree, msg, start + 3)
        local text = add_prefix(subtree, msg, start + 4, prefix_length)
        subtree:set_text("DSMIPv4 Extension: IPv6 Prefix Request, " .. text)
        return prefix_length == LINK_LOCAL_PREFIX_LENGTH and "link-local request" or "prefix request"
    end
    if subtype == SUBTYPE_PREFIX_REPLY then
        local code = u8(msg, start + 3)
        local code_item = subtree:add(f.code, msg:range(start + 3, 1))
        local accepted = code <= ACCEPT_CODE_MAX
        subtree:add(f.accepted, msg:range(start + 3, 1), accepted):set_generated()
        local prefix_length = add_prefix_length(subtree, msg, start + 4)
        add_reserved(subtree, msg, start + 5)
        local text = add_prefix(subtree, msg, start + 6, prefix_length)
        subtree:set_text(string.format("DSMIPv4 Extension: IPv6 Prefix Reply, %s, code %d (%s)",
            text, code, accepted and "accepted" or "rejected"))
        if not accepted then
            code_item:add_proto_expert_info(e.rejected, string.format("IPv6 prefix %s rejected, code %d",
                text, code))
        end
        return accepted and "prefix accepted" or "prefix rejected"
    end
    -- SUBTYPE_TUNNELING_MODE
    add_reserved(subtree, msg, start + 3)
    subtree:set_text("DSMIPv4 Extension: IPv6 Tunneling Mode (tunnel IPv6 to the care-of address)")
    state.tunneling_modes = state.tunneling_modes + 1
    if state.tunneling_modes > 1 then
        subtree:add_proto_expert_info(e.tunneling_mode_repeated, "At most one IPv6 Tunneling Mode (RFC 5454 §3.5)")
    end
    if state.message_type == REGISTRATION_REQUEST and not state.co_located then
        subtree:add_proto_expert_info(e.tunneling_mode_without_d,
            "IPv6 Tunneling Mode needs a co-located care-of address, D flag (RFC 5454 §3.5)")
    end
    return "tunneling mode"
end

---------------------------------------------------------------------------------------------------------
-- One Mobile IP message. Walks its extensions and adds the DSMIPv4 tree if there is any type 152.

local function reported_length(mip_info, udp_lengths)
    -- The UDP header ends right before the MIP message; its Length field sits 4 bytes before that.
    for _, udp_length in ipairs(udp_lengths) do
        if udp_length.offset == mip_info.offset - 4 then
            local payload = udp_length.value - 8
            if payload >= mip_info.len then
                return payload
            end
        end
    end
    return mip_info.len
end

local function count_summary(words)
    local order, counts = {}, {}
    for _, word in ipairs(words) do
        if counts[word] == nil then
            counts[word] = 0
            order[#order + 1] = word
        end
        counts[word] = counts[word] + 1
    end
    local parts = {}
    for _, word in ipairs(order) do
        parts[#parts + 1] = counts[word] == 1 and word or (counts[word] .. " x " .. word)
    end
    return table.concat(parts, ", ")
end

local function dissect_message(mip_info, udp_lengths, pinfo, tree)
    if mip_info.len < 1 then
        return
    end
    local msg = mip_info.range
    local msg_len = reported_length(mip_info, udp_lengths)
    local message_type = u8(msg, 0)
    local position = FIXED_PART[message_type]
    if position == nil or captured(msg) < position then
        return -- not a registration message, or its fixed part is cut (the mip dissector reports that)
    end
    local state = {
        message_type = message_type,
        co_located = message_type == REGISTRATION_REQUEST and bit_set(u8(msg, 1), FLAG_D_BIT),
        after_mn_ha = false,
        tunneling_modes = 0,
    }
    local root = nil
    local words = {}
    while position < msg_len and position < captured(msg) do
        local ext_type = u8(msg, position)
        if ext_type == DSMIPV4_TYPE then
            if root == nil then
                root = tree:add(dsmipv4, msg)
                root:append_text(", " .. message_names[message_type])
            end
            words[#words + 1] = dissect_extension(root, msg, msg_len, position, state)
        end
        -- Find the next extension.
        local next_position
        if LONG_FORMAT[ext_type] then
            if position + 4 > captured(msg) then
                break
            end
            next_position = position + 4 + msg:range(position + 2, 2):uint()
        else
            if position + 2 > captured(msg) then
                break
            end
            next_position = position + 2 + u8(msg, position + 1)
        end
        if ext_type == MN_HA_AUTH_TYPE then
            state.after_mn_ha = true
        end
        if next_position > msg_len and ext_type ~= DSMIPV4_TYPE and root ~= nil then
            root:add_proto_expert_info(e.extensions_cut, string.format(
                "Extension type %d at offset %d runs past the end of the message", ext_type, position))
        end
        position = next_position
    end
    if root ~= nil and #words > 0 then
        local summary = count_summary(words)
        root:append_text(": " .. summary)
        pinfo.cols.info:append(" [DSMIPv4: " .. summary .. "]")
    end
end

---------------------------------------------------------------------------------------------------------

function dsmipv4.dissector(tvb, pinfo, tree)
    local messages = { mip_field() }
    if #messages == 0 then
        return
    end
    local udp_lengths = { udp_length_field() }
    for _, mip_info in ipairs(messages) do
        local ok, err = pcall(dissect_message, mip_info, udp_lengths, pinfo, tree)
        if not ok then
            tree:add_proto_expert_info(e.internal, "DSMIPv4 dissector internal error: " .. tostring(err))
        end
    end
end

register_postdissector(dsmipv4)
