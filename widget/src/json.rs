//! JSON through the browser's own parser: `JSON.parse` / `JSON.stringify` do the text, and the
//! shared contract's serde types are read from (and written to) the resulting JavaScript values
//! by the small (de)serializer here. This keeps `serde_json` (its parser, float formatting and
//! error messages) out of the WebAssembly: the widget only needs to know that a value did not
//! fit, never why, so the error carries no message and nothing is ever formatted.

use js_sys::{Array, JSON, Object, Reflect};
use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer as _, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Impossible, Serialize};
use std::fmt;
use wasm_bindgen::{JsCast as _, JsValue};

/// A value that is not what the contract says (or could not be written). Deliberately empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid JSON value")
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Error
    }
    // serde's defaults build a message; none is wanted.
    fn invalid_type(_: de::Unexpected<'_>, _: &dyn de::Expected) -> Self {
        Error
    }
    fn invalid_value(_: de::Unexpected<'_>, _: &dyn de::Expected) -> Self {
        Error
    }
    fn invalid_length(_: usize, _: &dyn de::Expected) -> Self {
        Error
    }
    fn unknown_variant(_: &str, _: &'static [&'static str]) -> Self {
        Error
    }
    fn unknown_field(_: &str, _: &'static [&'static str]) -> Self {
        Error
    }
    fn missing_field(_: &'static str) -> Self {
        Error
    }
    fn duplicate_field(_: &'static str) -> Self {
        Error
    }
}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Error
    }
}

/// Parses JSON text with the browser's `JSON.parse`.
pub fn parse(text: &str) -> Result<JsValue, Error> {
    JSON::parse(text).map_err(|_| Error)
}

/// Reads a contract type from a JavaScript value (a parsed body, a `postMessage` payload).
pub fn from_value<T: DeserializeOwned>(value: JsValue) -> Result<T, Error> {
    T::deserialize(Value(value))
}

/// Writes a contract type as JSON text (`JSON.stringify` of the value built from it).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, Error> {
    let value = value.serialize(ToValue)?;
    JSON::stringify(&value).map(Into::into).map_err(|_| Error)
}

/// `value[key]`, `undefined` when it is not an object or has no such property.
pub fn get(value: &JsValue, key: &str) -> JsValue {
    if value.is_object() {
        Reflect::get(value, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// The largest integer a JavaScript number holds exactly.
const MAX_SAFE: u64 = (1 << 53) - 1;

/// A JavaScript value being read as a serde type (a serde `Deserializer`).
pub struct Value(pub JsValue);

fn absent(v: &JsValue) -> bool {
    v.is_null() || v.is_undefined()
}

impl<'de> de::Deserializer<'de> for Value {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = self.0;
        if absent(&v) {
            visitor.visit_unit()
        } else if let Some(b) = v.as_bool() {
            visitor.visit_bool(b)
        } else if let Some(n) = v.as_f64() {
            // Whole numbers as integers (what serde_json gives for them); others as floats.
            if n.fract() == 0.0 && n.abs() <= MAX_SAFE as f64 {
                if n >= 0.0 { visitor.visit_u64(n as u64) } else { visitor.visit_i64(n as i64) }
            } else {
                visitor.visit_f64(n)
            }
        } else if let Some(s) = v.as_string() {
            visitor.visit_string(s)
        } else if Array::is_array(&v) {
            Value(v).deserialize_seq(visitor)
        } else if v.is_object() {
            let keys = Object::keys::<JsValue>(v.unchecked_ref()).iter().filter_map(|k| k.as_string()).collect();
            visitor.visit_map(Fields::new(v, keys))
        } else {
            Err(Error)
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if absent(&self.0) { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if absent(&self.0) { visitor.visit_unit() } else { Err(Error) }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.as_string().map_or(Err(Error), |s| visitor.visit_string(s))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Items::new(self.0)?)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(Fields::of_struct(self.0, fields)?)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // The contract's enums are unit variants written as strings.
        match self.0.as_string() {
            Some(s) => de::Deserializer::deserialize_enum(
                s.into_deserializer() as de::value::StringDeserializer<Error>,
                name,
                variants,
                visitor,
            ),
            None => Err(Error),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit_struct newtype_struct tuple tuple_struct map
    }
}

struct Items {
    array: Array,
    next: u32,
}

// The non-generic parts stay out of line: serde instantiates the generic ones once per type.
impl Items {
    #[inline(never)]
    fn new(value: JsValue) -> Result<Self, Error> {
        if Array::is_array(&value) { Ok(Items { array: value.unchecked_into(), next: 0 }) } else { Err(Error) }
    }

    #[inline(never)]
    fn next_item(&mut self) -> Option<JsValue> {
        if self.next >= self.array.length() {
            return None;
        }
        self.next += 1;
        Some(self.array.get(self.next - 1))
    }
}

impl<'de> SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        match self.next_item() {
            Some(item) => seed.deserialize(Value(item)).map(Some),
            None => Ok(None),
        }
    }
}

struct Fields {
    object: JsValue,
    keys: std::vec::IntoIter<String>,
    value: JsValue,
}

impl Fields {
    fn new(object: JsValue, keys: Vec<String>) -> Self {
        Fields { object, keys: keys.into_iter(), value: JsValue::UNDEFINED }
    }

    /// The contract's fields of an object: unknown ones are ignored, as serde does.
    #[inline(never)]
    fn of_struct(object: JsValue, fields: &'static [&'static str]) -> Result<Self, Error> {
        if !object.is_object() || Array::is_array(&object) {
            return Err(Error);
        }
        Ok(Fields::new(object, fields.iter().map(|f| (*f).to_owned()).collect()))
    }

    /// The next key whose value is present; an `undefined` property is an absent one (as
    /// `JSON.stringify` would drop it).
    #[inline(never)]
    fn next_present(&mut self) -> Option<String> {
        for key in self.keys.by_ref() {
            let value = get(&self.object, &key);
            if !value.is_undefined() {
                self.value = value;
                return Some(key);
            }
        }
        None
    }
}

impl<'de> MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.next_present() {
            Some(key) => {
                let key: StrDeserializer<'_, Error> = key.as_str().into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(Value(std::mem::replace(&mut self.value, JsValue::UNDEFINED)))
    }
}

/// Builds the JavaScript value of a serde type: objects, arrays, strings, numbers, booleans, null.
struct ToValue;

impl ser::Serializer for ToValue {
    type Ok = JsValue;
    type Error = Error;
    type SerializeSeq = ToArray;
    type SerializeTuple = ToArray;
    type SerializeTupleStruct = Impossible<JsValue, Error>;
    type SerializeTupleVariant = Impossible<JsValue, Error>;
    type SerializeMap = Impossible<JsValue, Error>;
    type SerializeStruct = ToObject;
    type SerializeStructVariant = Impossible<JsValue, Error>;

    fn serialize_bool(self, v: bool) -> Result<JsValue, Error> {
        Ok(JsValue::from_bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<JsValue, Error> {
        if v.unsigned_abs() > MAX_SAFE { Err(Error) } else { self.serialize_f64(v as f64) }
    }
    fn serialize_u8(self, v: u8) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<JsValue, Error> {
        if v > MAX_SAFE { Err(Error) } else { self.serialize_f64(v as f64) }
    }
    fn serialize_f32(self, v: f32) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<JsValue, Error> {
        Ok(JsValue::from_f64(v))
    }
    fn serialize_char(self, v: char) -> Result<JsValue, Error> {
        Ok(JsValue::from_str(v.encode_utf8(&mut [0; 4])))
    }
    fn serialize_str(self, v: &str) -> Result<JsValue, Error> {
        Ok(JsValue::from_str(v))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<JsValue, Error> {
        Err(Error)
    }
    fn serialize_none(self) -> Result<JsValue, Error> {
        Ok(JsValue::NULL)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<JsValue, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<JsValue, Error> {
        Ok(JsValue::NULL)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<JsValue, Error> {
        Ok(JsValue::NULL)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<JsValue, Error> {
        Ok(JsValue::from_str(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<JsValue, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<JsValue, Error> {
        Err(Error)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<ToArray, Error> {
        Ok(ToArray(Array::new()))
    }
    fn serialize_tuple(self, _: usize) -> Result<ToArray, Error> {
        Ok(ToArray(Array::new()))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(Error)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Error)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Error)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<ToObject, Error> {
        Ok(ToObject(Object::new()))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Error)
    }
}

struct ToArray(Array);

impl ser::SerializeSeq for ToArray {
    type Ok = JsValue;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.push(&value.serialize(ToValue)?);
        Ok(())
    }
    fn end(self) -> Result<JsValue, Error> {
        Ok(self.0.into())
    }
}

impl ser::SerializeTuple for ToArray {
    type Ok = JsValue;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<JsValue, Error> {
        Ok(self.0.into())
    }
}

struct ToObject(Object);

impl ser::SerializeStruct for ToObject {
    type Ok = JsValue;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        let value = value.serialize(ToValue)?;
        Reflect::set(&self.0, &JsValue::from_str(key), &value).map(drop).map_err(|_| Error)
    }
    fn skip_field(&mut self, _: &'static str) -> Result<(), Error> {
        Ok(())
    }
    fn end(self) -> Result<JsValue, Error> {
        Ok(self.0.into())
    }
}
