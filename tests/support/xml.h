// A minimal XML well-formedness checker and tree for tests (no XML library needed): one root
// element, properly nested and matching tags, quoted and unique attributes, only the five named
// entities and numeric character references, comments and an <?xml ...?> declaration. Enough to
// check the SVG the project writes; not a validating parser (no DTDs, CDATA or namespaces checks).
#pragma once
#include <cctype>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace afd::testing {

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attrs;  // values unescaped
  std::string text;                          // character data directly inside, unescaped
  std::vector<XmlElement> children;

  // Every element named `name` in this subtree (this one included), depth first.
  void find_all(const std::string& tag, std::vector<const XmlElement*>& out) const {
    if (name == tag) out.push_back(this);
    for (const XmlElement& c : children) c.find_all(tag, out);
  }
  std::vector<const XmlElement*> all(const std::string& tag) const {
    std::vector<const XmlElement*> out;
    find_all(tag, out);
    return out;
  }
};

// Parses `text`; throws std::runtime_error("offset N: what") at the first error.
class XmlParser {
 public:
  explicit XmlParser(const std::string& text) : s_(text) {}

  XmlElement parse() {
    if (s_.compare(0, 5, "<?xml") == 0) {
      const size_t end = s_.find("?>");
      require(end != std::string::npos, "unterminated XML declaration");
      i_ = end + 2;
    }
    skip_misc();
    XmlElement root = element();
    skip_misc();
    require(i_ == s_.size(), "content after the root element");
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("offset " + std::to_string(i_) + ": " + what);
  }
  void require(bool ok, const std::string& what) const {
    if (!ok) fail(what);
  }
  bool starts(const char* p) const { return s_.compare(i_, std::char_traits<char>::length(p), p) == 0; }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void skip_comment() {
    const size_t end = s_.find("-->", i_ + 4);
    require(end != std::string::npos, "unterminated comment");
    i_ = end + 3;
  }
  void skip_misc() {
    for (skip_ws(); starts("<!--"); skip_ws()) skip_comment();
  }
  std::string name() {
    const size_t start = i_;
    require(i_ < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' || s_[i_] == ':'),
            "expected a name");
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || std::string("-_:.").find(s_[i_]) != std::string::npos))
      ++i_;
    return s_.substr(start, i_ - start);
  }
  // At '&': one entity or character reference.
  std::string entity() {
    const size_t end = s_.find(';', i_);
    require(end != std::string::npos && end - i_ <= 10, "unterminated entity");
    const std::string e = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    if (e == "amp") return "&";
    if (e == "lt") return "<";
    if (e == "gt") return ">";
    if (e == "quot") return "\"";
    if (e == "apos") return "'";
    if (e.size() > 1 && e[0] == '#') {
      const bool hex = e[1] == 'x';
      const std::string digits = e.substr(hex ? 2 : 1);
      require(!digits.empty(), "empty character reference");
      for (char c : digits) require(hex ? std::isxdigit(static_cast<unsigned char>(c)) : std::isdigit(static_cast<unsigned char>(c)), "bad character reference &" + e + ";");
      const long code = std::stol(digits, nullptr, hex ? 16 : 10);
      return code < 128 ? std::string(1, char(code)) : std::string("?");
    }
    fail("unknown entity &" + e + ";");
  }
  void check_char(char c) {
    require(!(static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r'), "control character");
  }
  XmlElement element() {
    require(starts("<"), "expected '<'");
    ++i_;
    XmlElement el;
    el.name = name();
    for (;;) {
      const size_t before = i_;
      skip_ws();
      require(i_ < s_.size(), "unterminated start tag <" + el.name);
      if (starts("/>")) {
        i_ += 2;
        return el;
      }
      if (s_[i_] == '>') {
        ++i_;
        break;
      }
      require(i_ > before, "expected whitespace before an attribute of <" + el.name);
      const std::string key = name();
      skip_ws();
      require(starts("="), "expected '=' after attribute " + key);
      ++i_;
      skip_ws();
      require(i_ < s_.size() && (s_[i_] == '"' || s_[i_] == '\''), "attribute " + key + " is not quoted");
      const char quote = s_[i_++];
      std::string value;
      while (i_ < s_.size() && s_[i_] != quote) {
        require(s_[i_] != '<', "'<' in the value of attribute " + key);
        if (s_[i_] == '&') {
          value += entity();
        } else {
          check_char(s_[i_]);
          value += s_[i_++];
        }
      }
      require(i_ < s_.size(), "unterminated value of attribute " + key);
      ++i_;
      require(el.attrs.emplace(key, value).second, "duplicate attribute " + key + " in <" + el.name);
    }
    // Content: text, comments and child elements up to the matching end tag.
    for (;;) {
      require(i_ < s_.size(), "no end tag for <" + el.name);
      if (starts("</")) {
        i_ += 2;
        const std::string end = name();
        require(end == el.name, "end tag </" + end + "> does not match <" + el.name + ">");
        skip_ws();
        require(starts(">"), "expected '>'");
        ++i_;
        return el;
      }
      if (starts("<!--")) {
        skip_comment();
      } else if (s_[i_] == '<') {
        el.children.push_back(element());
      } else if (s_[i_] == '&') {
        el.text += entity();
      } else {
        check_char(s_[i_]);
        el.text += s_[i_++];
      }
    }
  }

  const std::string& s_;
  size_t i_ = 0;
};

inline XmlElement parse_xml(const std::string& text) { return XmlParser(text).parse(); }

}  // namespace afd::testing
