<?xml version="1.0" encoding="utf-8"?>
<!-- The relational registry (IVOA RegTAP 1.1) tables, for voexec's tests: a throwaway DaCHS
  answers pyvo's registry searches and voexec's `regtap` harvest source over TAP.

  `scripts/services/dachs regtap URL` copies this file to <DaCHS root>/inputs/rr/q.rd, creates
  the tables (`dachs imp rr/q`) and fills them from the VOResource records a publishing registry
  serves over OAI-PMH (`scripts/services/regtap/load.py`). Column names and meanings follow the
  RegTAP 1.1 Recommendation: identifiers and vocabulary values are stored in lower case,
  lists are hash-separated, and NATURAL JOINs work because tables share only their key columns.
  The ADQL functions RegTAP defines (ivo_hasword, ivo_nocasematch, ivo_hashlist_has,
  ivo_string_agg) are DaCHS built-ins (gavo.adql.ufunctions, //adql), so none is declared here.
-->
<resource schema="rr">
  <meta name="title">voexec test relational registry</meta>
  <meta name="description">RegTAP 1.1 tables filled from a voexec publishing registry.</meta>
  <meta name="creationDate">2026-01-01T00:00:00Z</meta>
  <meta name="subject">virtual-observatories</meta>
  <meta name="utype">ivo://ivoa.net/std/RegTAP#1.1</meta>

  <table id="resource" onDisk="True" adql="True" primary="ivoid">
    <meta name="description">One row per resource: the VOResource core.</meta>
    <column name="ivoid" type="text" description="The resource's IVOA identifier (lower case)."/>
    <column name="res_type" type="text" description="xsi:type of the resource, canonical prefix (lower case), e.g. vs:catalogservice."/>
    <column name="created" type="timestamp" description="When the resource was created."/>
    <column name="short_name" type="text" description="Short name (shortName)."/>
    <column name="res_title" type="text" description="Title of the resource."/>
    <column name="updated" type="timestamp" description="When the record was last updated."/>
    <column name="content_level" type="text" description="Hash-separated content levels (lower case)."/>
    <column name="res_description" type="text" description="Description of the resource."/>
    <column name="reference_url" type="text" description="URL of further information."/>
    <column name="creator_seq" type="text" description="Creator names, separated by semicolons."/>
    <column name="content_type" type="text" description="Hash-separated content types (lower case)."/>
    <column name="source_format" type="text" description="Format of source_value (e.g. bibcode)."/>
    <column name="source_value" type="text" description="A bibliographic reference of the resource."/>
    <column name="res_version" type="text" description="Version of the resource."/>
    <column name="region_of_regard" type="real" unit="deg" description="Angular resolution of the coverage."/>
    <column name="waveband" type="text" description="Hash-separated wavebands (lower case)."/>
    <column name="rights" type="text" description="Rights statements, separated by hashes."/>
    <column name="rights_uri" type="text" description="Rights URIs, separated by hashes."/>
    <column name="harvested_from" type="text" description="The registry this record came from."/>
  </table>

  <table id="capability" onDisk="True" adql="True" primary="ivoid,cap_index">
    <meta name="description">Capabilities of resources.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="cap_index" type="smallint" required="True" description="Position of the capability in its resource (from 1)."/>
    <column name="cap_type" type="text" description="xsi:type of the capability (lower case)."/>
    <column name="cap_description" type="text" description="Description of the capability."/>
    <column name="standard_id" type="text" description="The standard the capability implements (lower case)."/>
  </table>

  <table id="interface" onDisk="True" adql="True" primary="ivoid,cap_index,intf_index">
    <meta name="description">Interfaces of capabilities.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="cap_index" type="smallint" description="Parent capability.">
      <values nullLiteral="-1"/>
    </column>
    <column name="intf_index" type="smallint" required="True" description="Position of the interface in the resource (from 1)."/>
    <column name="intf_type" type="text" description="xsi:type of the interface (lower case)."/>
    <column name="intf_role" type="text" description="The interface's role (std for standard interfaces)."/>
    <column name="std_version" type="text" description="Version of the standard the interface implements."/>
    <column name="query_type" type="text" description="Hash-separated HTTP methods (lower case)."/>
    <column name="result_type" type="text" description="MIME type of the results."/>
    <column name="wsdl_url" type="text" description="WSDL of the interface, if any."/>
    <column name="url_use" type="text" description="How to use the access URL (full, base, post, dir)."/>
    <column name="access_url" type="text" description="The URL to access the interface."/>
    <column name="mirror_url" type="text" description="Hash-separated mirror URLs."/>
    <column name="authenticated_only" type="smallint" description="1 when every security method needs authentication.">
      <values nullLiteral="-1"/>
    </column>
    <column name="security_method_id" type="text" description="Hash-separated security method standard ids."/>
  </table>

  <table id="res_subject" onDisk="True" adql="True">
    <meta name="description">Subjects (keywords) of resources.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="res_subject" type="text" description="One subject of the resource."/>
  </table>

  <table id="res_role" onDisk="True" adql="True">
    <meta name="description">People and organisations: publishers, creators, contacts.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="role_name" type="text" description="Name of the person or organisation."/>
    <column name="role_ivoid" type="text" description="Its IVOA identifier, if any (lower case)."/>
    <column name="street_address" type="text" description="Postal address (contacts)."/>
    <column name="email" type="text" description="E-mail address (contacts)."/>
    <column name="telephone" type="text" description="Telephone number (contacts)."/>
    <column name="logo" type="text" description="URL of a logo (creators)."/>
    <column name="base_role" type="text" description="publisher, creator, contributor or contact."/>
    <column name="role_seq" type="smallint" description="Position among the entities of the same role.">
      <values nullLiteral="-1"/>
    </column>
  </table>

  <table id="res_detail" onDisk="True" adql="True">
    <meta name="description">Other scalar metadata, by xpath.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="cap_index" type="smallint" description="Parent capability (null for resource metadata).">
      <values nullLiteral="-1"/>
    </column>
    <column name="detail_xpath" type="text" description="The xpath of the element (lower case)."/>
    <column name="detail_value" type="text" description="The (string) value of the element."/>
  </table>

  <table id="relationship" onDisk="True" adql="True">
    <meta name="description">Relationships between resources.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="relationship_type" type="text" description="The relationship (lower case), e.g. isservedby."/>
    <column name="related_id" type="text" description="The related resource's identifier (lower case)."/>
    <column name="related_name" type="text" description="The related resource's name."/>
  </table>

  <table id="validation" onDisk="True" adql="True">
    <meta name="description">Validation levels given by registries.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="validated_by" type="text" description="The validating registry (lower case)."/>
    <column name="val_level" type="smallint" description="Validation level (0..4).">
      <values nullLiteral="-1"/>
    </column>
    <column name="cap_index" type="smallint" description="Capability validated (null for the resource).">
      <values nullLiteral="-1"/>
    </column>
  </table>

  <table id="res_schema" onDisk="True" adql="True">
    <meta name="description">Table sets of resources.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="schema_index" type="smallint" description="Position of the schema in the resource.">
      <values nullLiteral="-1"/>
    </column>
    <column name="schema_name" type="text" description="Name of the schema."/>
    <column name="schema_title" type="text" description="Title of the schema."/>
    <column name="schema_description" type="text" description="Description of the schema."/>
    <column name="schema_utype" type="text" description="utype of the schema."/>
  </table>

  <table id="res_table" onDisk="True" adql="True">
    <meta name="description">Tables of resources.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="schema_index" type="smallint" description="Parent schema.">
      <values nullLiteral="-1"/>
    </column>
    <column name="table_index" type="smallint" description="Position of the table in the resource.">
      <values nullLiteral="-1"/>
    </column>
    <column name="table_name" type="text" description="Fully qualified name of the table."/>
    <column name="table_title" type="text" description="Title of the table."/>
    <column name="table_description" type="text" description="Description of the table."/>
    <column name="table_utype" type="text" description="utype of the table (lower case)."/>
    <column name="table_type" type="text" description="output, base_table or view."/>
    <column name="nrows" type="bigint" description="Approximate number of rows.">
      <values nullLiteral="-1"/>
    </column>
  </table>

  <table id="table_column" onDisk="True" adql="True">
    <meta name="description">Columns of the tables of resources.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="table_index" type="smallint" description="Parent table.">
      <values nullLiteral="-1"/>
    </column>
    <column name="name" type="text" description="Name of the column."/>
    <column name="ucd" type="text" description="UCD of the column."/>
    <column name="unit" type="text" description="Unit of the column's values."/>
    <column name="utype" type="text" description="utype of the column (lower case)."/>
    <column name="std" type="smallint" description="1 when the column is defined by a standard.">
      <values nullLiteral="-1"/>
    </column>
    <column name="datatype" type="text" description="Type of the column's values."/>
    <column name="extended_schema" type="text" description="Prefix of the extended type."/>
    <column name="extended_type" type="text" description="Extended type (e.g. timestamp)."/>
    <column name="arraysize" type="text" description="Array shape of the values."/>
    <column name="delim" type="text" description="Delimiter of array values."/>
    <column name="type_system" type="text" description="xsi:type of the data type (lower case)."/>
    <column name="flag" type="text" description="Hash-separated flags: indexed, primary, nullable."/>
    <column name="column_description" type="text" description="Description of the column."/>
  </table>

  <table id="res_date" onDisk="True" adql="True">
    <meta name="description">Dates in the life of resources.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="date_value" type="timestamp" description="The date."/>
    <column name="value_role" type="text" description="What happened then (lower case): created, updated..."/>
  </table>

  <table id="alt_identifier" onDisk="True" adql="True">
    <meta name="description">Other identifiers (DOIs, ORCIDs) of resources.</meta>
    <column name="ivoid" type="text" description="Parent resource."/>
    <column name="alt_identifier" type="text" description="An identifier as a URI (doi:..., orcid:...)."/>
  </table>

  <!-- Only creates the (empty) tables: the loader fills them. -->
  <data id="tables">
    <make table="resource"/>
    <make table="capability"/>
    <make table="interface"/>
    <make table="res_subject"/>
    <make table="res_role"/>
    <make table="res_detail"/>
    <make table="relationship"/>
    <make table="validation"/>
    <make table="res_schema"/>
    <make table="res_table"/>
    <make table="table_column"/>
    <make table="res_date"/>
    <make table="alt_identifier"/>
  </data>
</resource>
